"""The pipeline: source → engine → compositor → sink, in threads joined by bounded queues.

Threads: capture (reads the source), engine (preprocess, batched inference, postprocess) and
composite (mask post-processing and the masking mode). The sink, the side outputs and the
user's callbacks run on the calling (main) thread. Every frame carries its stage times, measured
on the monotonic clock at the same boundaries the GPU path times with CUDA events:

``capture`` → ``preprocess`` → ``inference`` → ``postprocess`` → ``composite`` → ``output``.

Example:
    >>> from realtime.pipeline import Pipeline
    >>> with Pipeline("synthetic:320x180@30?frames=10", mode="pixelate", output="null") as pipeline:  # doctest: +SKIP
    ...     for result in pipeline:
    ...         print(result.frame.index, result.timings_ms["inference"])
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import engines
from engines.backends.base import Engine
from engines.errors import ConfigError
from engines.strategies import StrategySettings
from realtime.capture import LiveSource, Source, SourceOptions, redact
from realtime.capture.live import LiveStats
from realtime.compositor import Compositor, MaskSettings, make_compositor
from realtime.frame import Frame
from realtime.outputs import Sink, SinkOptions, StopRequested, watched_as
from realtime.outputs.mask_archive import MaskArchive
from realtime.outputs.paths import check_writable
from realtime.outputs.pipe import STDOUT
from realtime.outputs.segments import check_segment, check_segments_writable, segments_for
from realtime.pipeline.frame_queue import FrameQueue, live_frames
from realtime.pipeline.masker import PRIVACY_REASONS, FrameMasker
from realtime.pipeline.paths import check_run_paths
from realtime.pipeline.results import MetadataWriter, Result
from realtime.pipeline.signals import SignalHold
from realtime.pipeline.stats import RunStats, StatsFile, utc
from realtime.pipeline.streams import (
    one_per_stream,
    open_stream_sink,
    open_stream_sources,
    outputs_per_stream,
    same_size_batches,
    segment_origins,
    video_file_path,
)

EMULATE_GPU_ENV = "REALTIME_MASK_EMULATE_GPU"
_END = object()
log = logging.getLogger(__name__)


@dataclass
class _Failure:
    error: BaseException


SourceLike = str | os.PathLike[str] | int | Source  # a source string, a path, a camera index or an open source


class Pipeline:
    """Masks a video source into a sink — or several sources, batched through one engine, each into its own sink.

    Args:
        source: a source string (see :func:`realtime.capture.open_source`; a path or a camera index too) or an
            open :class:`Source`; or a list
            of them (several cameras or files at once: all live or all files; each frame's ``stream`` says which).
        model: model name/path, or a loaded :class:`~engines.Engine`.
        mode: masking mode name (see :data:`realtime.compositor.MODES`) or a :class:`Compositor`.
        output: sink string (see :func:`realtime.outputs.open_sink`), a :class:`Sink`, a list of them, or None (no
            sink). With one source, every output of the list (``["rec.mp4", "http://127.0.0.1:8080/"]``: a
            recording and a live view at once); with several, one per source, and each string with ``{stream}`` in
            it for every source (``masked-{stream}.mp4``; see :func:`~realtime.pipeline.streams.outputs_per_stream`).
        backend, device, precision: engine choice when ``model`` is not an engine.
        batch: frames per engine call (files; live sources use what has arrived, up to this).
        mask: mask post-processing; default: threshold 0.5 on the mode's default target.
        mode_options: keyword options of the mode (``strength``, ``block``, ``color``, ...).
        source_options: timeouts, reconnect, TCP, real-time pacing.
        save_masks: ``.npz`` for the raw probabilities (``realtime-mask masks`` format); with several sources,
            a path with ``{stream}`` in it.
        metadata: ``.jsonl`` with one line per frame (its ``stream`` says which source).
        stats: ``.json`` written on close, the per-stage table (:meth:`RunStats.as_dict`), and every 10 s before.
        max_frames: stop after this many frames of each source.
        cache: model cache folder.
        privacy: fail closed — a frame whose mask is missing (engine error), later than
            ``mask_budget_ms`` after capture, or a placeholder while a live source reconnects, is written
            fully masked, never raw; such frames are counted. Default: on when the mode hides people
            (target person, any mode but overlay and mask).
        mask_budget_ms: how late a mask may be (capture → composite) before its frame is fully masked.
        strategy: tiled / motion-ROI inference for small people (:mod:`engines.strategies`); default full frame.
        audio: copy each video-file source's audio track into its video-file output (default: the output is
            silent, and a source with sound says so once; :mod:`realtime.outputs.audio`).
        segment_s: cut each video file output, ``metadata`` and ``save_masks`` into files of this many seconds
            (:mod:`realtime.outputs.segments`).
        keep_s: with ``segment_s``, delete the segments of each such output whose span is further back than this.
    """

    def __init__(self, source: SourceLike | Sequence[SourceLike], model: str | Engine = engines.DEFAULT_MODEL,
                 mode: str | Compositor = "blur", output: str | Sink | Sequence[str | Sink] | None = None, *,
                 backend: str | None = None, device: str = "cpu", precision: str = "fp32", batch: int = 1,
                 mask: MaskSettings | None = None,
                 mode_options: dict[str, Any] | None = None, source_options: SourceOptions | None = None,
                 save_masks: str | Path | Sequence[str | Path] | None = None, metadata: str | Path | None = None,
                 stats: str | Path | None = None,
                 max_frames: int | None = None, cache: str | Path | None = None, queue_size: int = 4,
                 privacy: bool | None = None, mask_budget_ms: float = 1000.0,
                 strategy: StrategySettings | None = None, audio: bool = False,
                 segment_s: float | None = None, keep_s: float | None = None) -> None:
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, got {batch}")
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max frames must be >= 1, got {max_frames}")
        self.batch, self.max_frames, self.segment_s, self.keep_s = batch, max_frames, segment_s, keep_s
        if keep_s is not None and segment_s is None:
            raise ConfigError("--keep deletes old segments of a recording cut by --segment; give --segment too")
        given = [source] if isinstance(source, str | Source | os.PathLike | int) else list(source)
        sources = [s if isinstance(s, Source) else os.fspath(s) if isinstance(s, os.PathLike) else str(s)
                   for s in given]  # a Path, a camera index: as their strings
        if not sources:
            raise ConfigError("no source given")
        outputs = outputs_per_stream(output, len(sources))
        archive_paths = one_per_stream(save_masks, len(sources), "mask archives", "--save-masks")
        check_run_paths(sources, [out for outs in outputs for out in outs], save_masks=archive_paths,
                        metadata=metadata, stats=stats, background=(mode_options or {}).get("background"))
        self._stats_file = StatsFile(stats if str(stats) == STDOUT else check_writable(stats)) if stats else None
        self._owned: list[Any] = []  # what we opened and must close, in opening order
        try:
            self.compositor = mode if isinstance(mode, Compositor) else self._own(make_compositor(mode, **(mode_options or {})))
            if not 0 < mask_budget_ms < math.inf:  # nan would never count a mask late: fail-closed off unseen
                raise ConfigError(f"mask budget must be a number of ms > 0, got {mask_budget_ms}")
            self.mask_budget_s = mask_budget_ms / 1000.0
            self.archives = [self._own(MaskArchive(path, segments_for(path, segment_s, keep_s))) if path else None
                             for path in archive_paths]
            self.metadata = self._own(MetadataWriter(metadata, segments_for(metadata, segment_s, keep_s))) \
                if metadata else None
            videos = [path for outs in outputs for out in outs if (path := video_file_path(out)) is not None]
            if segment_s is not None:  # --metadata and --save-masks are cut too
                check_segment(segment_s, videos + [Path(p) for p in [*archive_paths, metadata] if p and str(p) != "-"])
            for path in videos:  # fail before the model loads and the source opens (a segment's folders may be made)
                if segment_s is None:
                    check_writable(path)
                else:
                    check_segments_writable(path)
            self.engine = model if isinstance(model, Engine) else self._own(
                engines.load(model, backend=backend, device=device, precision=precision, cache=cache))
            self.masker = FrameMasker(self.engine, self.compositor, mask=mask, privacy=privacy, strategy=strategy,
                                      streams=len(sources))
            self.privacy, self.mask_settings = self.masker.privacy, self.masker.mask_settings
            self.privacy_counts = self.masker.privacy_counts  # frames written fully masked, by reason
            options = source_options or SourceOptions()
            watched = [kind for outs in outputs for out in outs if (kind := watched_as(out)) is not None]
            paced_for = watched[0] if watched and options.realtime is None else None
            if options.realtime is None:  # a file to a window or a stream plays at its pace, not as fast as it decodes
                options = replace(options, realtime=bool(watched))
            self.sources = open_stream_sources(sources, options, own=self._own)
            self.live = self.sources[0].live
            self._paced_for = None if self.live else paced_for  # said with the first frame written
            origins = segment_origins(self.sources, self.archives, self.metadata) if segment_s else [None] * len(sources)
            self.sinks = [open_stream_sink(outs, src, SinkOptions(segment_s=segment_s, keep_s=keep_s, segment_origin=origin),
                                           audio=audio, compositor=self.compositor, max_frames=max_frames, own=self._own)
                          for outs, src, origin in zip(outputs, self.sources, origins, strict=True)]
        except BaseException:
            self._close_owned()
            raise
        # development: $REALTIME_MASK_EMULATE_GPU=1 runs the GPU path's code on the CPU with a torch engine there
        # (kernels emulated, see realtime/compositor/emulator.py)
        self._emulate_gpu = os.environ.get(EMULATE_GPU_ENV) == "1" and self.engine.device == "cpu" \
            and hasattr(self.engine, "infer_tensor")
        self.stats = RunStats()
        uris = [redact(s.uri) for s in self.sources]
        sink_uris = [sink.uri if sink else None for sink in self.sinks]
        self.stats.info = {
            "source": uris[0] if len(uris) == 1 else uris, "output": sink_uris[0] if len(uris) == 1 else sink_uris,
            "model": self.engine.model_name, "backend": self.engine.backend, "device": self.engine.device,
            "precision": self.engine.precision, "mode": self.compositor.name, "batch": batch, "privacy": self.privacy,
        }
        self._stop = threading.Event()
        # Live sources must not queue stale frames: one slot per stream between stages, a stale frame replaced.
        depth = max(batch, len(self.sources)) if self.live else max(queue_size, batch * 2)
        self._frames = FrameQueue(len(self.sources), maxsize=depth)
        self._masks: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._results: queue.Queue[Any] = queue.Queue(maxsize=1 if self.live else queue_size)
        self._written = [0] * len(self.sources)  # frames written of each stream (--max-frames counts each)
        self._written_masked = [dict.fromkeys(PRIVACY_REASONS, 0) for _ in self.sources]  # of those, fully masked
        self._ended = 0  # sources whose capture has ended
        self._composite_on_gpu = False  # decided in _start()
        self._threads: list[threading.Thread] = []
        self._signals = SignalHold()  # a Ctrl-C waits until the frame's outputs are all written
        self._closed = False
        self._started_at = 0.0

    def _own(self, thing: Any) -> Any:
        self._owned.append(thing)
        return thing

    @property
    def source(self) -> Source:
        """The (first) source."""
        return self.sources[0]

    @property
    def sink(self) -> Sink | None:
        """The (first) source's sink."""
        return self.sinks[0]

    @property
    def dropped(self) -> int:
        """Live frames dropped so far: by the sources (a newer frame came before the pipeline took one) and before
        the engine (a stale frame replaced by its stream's newer one)."""
        return sum(self._dropped_of(stream) for stream in range(len(self.sources)))

    def _dropped_of(self, stream: int) -> int:
        return self.sources[stream].dropped + self._frames.dropped[stream]

    # --- worker threads ---------------------------------------------------------------------------
    def _put(self, target: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                target.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, source: queue.Queue[Any], idle: Callable[[], None] | None = None) -> Any:
        while not self._stop.is_set():
            try:
                return source.get(timeout=0.05)
            except queue.Empty:
                if idle is not None:
                    idle()
        return _END

    def _worker(self, body: Callable[[], None], downstream: queue.Queue[Any]) -> None:
        try:
            body()
        except BaseException as exc:
            self._put(downstream, _Failure(exc))

    def _capture_loop(self, stream: int) -> None:
        """One source's frames into the shared queue (one such thread per source), tagged with its stream."""
        source = self.sources[stream]
        frames = live_frames(source, self._stop, self.privacy) if isinstance(source, LiveSource) else iter(source)
        count = 0
        while not self._stop.is_set():
            try:
                frame = next(frames)
            except StopIteration:
                break
            if stream:
                frame = replace(frame, stream=stream)
            # capture = from the frame's capture time until the pipeline holds it: the decode for files,
            # the wait since arrival for live sources. Every stage lies inside the end-to-end interval.
            capture_ms = max(time.monotonic() - frame.capture_ts, 0.0) * 1000.0
            if not source.keeps_every_frame:
                if not self._frames.put_newest(frame, capture_ms, self._stop):
                    return
            elif not self._put(self._frames, (frame, capture_ms)):
                return
            count += 1
            # a file never drops frames, so its limit is exact here; a live source may still drop this
            # frame as stale, so there the limit counts written frames (see __iter__, which writes no more)
            if self.max_frames is not None and (count if not self.live else self._written[stream]) >= self.max_frames:
                if isinstance(source, LiveSource):
                    source.interrupt()  # its count is written: stop reading it (each frame read now would be dropped)
                break
        self._put(self._frames, _END)

    def _next_batch(self) -> tuple[list[tuple[Frame, float]], Any]:
        """Up to ``batch`` frames, and the end/failure marker that stopped the gathering (or None): the end once
        every source has ended.

        Files wait for a full batch; live sources take only what has already arrived.
        """
        items: list[tuple[Frame, float]] = []
        while len(items) < self.batch:
            if items and self.live:
                try:
                    item = self._frames.get_nowait()
                except queue.Empty:
                    break
            else:
                item = self._get(self._frames)
            if item is _END:
                self._ended += 1
                if self._ended < len(self.sources) and not self._stop.is_set():
                    continue
            if item is _END or isinstance(item, _Failure):
                return items, item
            items.append(item)
        return items, None

    def _engine_loop(self) -> None:
        while True:
            items, tail = self._next_batch()
            if items:
                self._infer(items)
            if tail is not None:
                self._put(self._masks, tail)
                return

    def _infer(self, items: list[tuple[Frame, float]]) -> None:
        """Masks for a batch; placeholders (and, with privacy, a failed engine call) get None: fully masked."""
        probabilities, shared = self.masker.probabilities([frame for frame, _ in items])
        for (frame, capture_ms), probability in zip(items, probabilities, strict=True):
            if not self._put(self._masks, (frame, probability, {"capture": capture_ms, **shared})):
                return

    def _gpu_loop(self) -> None:
        """The GPU path: batches go through :class:`~realtime.pipeline.gpu.GpuStage`, two in flight at once.

        Stage names map as: preprocess = upload + preprocess kernel, inference = engine, postprocess = 0
        (fused into the compositor), composite = mask + composite kernels + download. Fail-closed privacy as
        on the CPU path: a batch the GPU stage fails on, a placeholder and a late frame are written fully masked.
        """
        from realtime.pipeline.gpu import GpuStage

        several, archived = len(self.sources) > 1, any(archive is not None for archive in self.archives)
        stage = GpuStage(self.engine, self.compositor, self.mask_settings, max_batch=self.batch,
                         per_stream_state=several, keep_probability=archived, emulate=self._emulate_gpu)
        pending: tuple[int, list[tuple[Frame, float]]] | None = None

        def fully_masked(items: list[tuple[Frame, float]], reason: str) -> bool:
            self.privacy_counts[reason] += len(items)
            for frame, capture_ms in items:
                alpha, image = self._fully_masked(frame)
                if not self._put(self._results, Result(frame, None, alpha, image, {"capture": capture_ms},
                                                       fully_masked=reason)):
                    return False
            return True

        def failed(items: list[tuple[Frame, float]], error: Exception) -> bool:
            if not self.privacy:
                raise error
            log.error("GPU stage failed; %d frame(s) written fully masked (privacy)", len(items), exc_info=error)
            return fully_masked(items, "engine_error")

        def finish(ticket: int, items: list[tuple[Frame, float]]) -> bool:
            try:
                batch = stage.collect(ticket)
            except Exception as exc:
                return failed(items, exc)
            gpu_ms = batch.timings_ms
            timings = {"preprocess": gpu_ms["h2d"] + gpu_ms["preprocess"], "inference": gpu_ms["inference"],
                       "postprocess": 0.0, "composite": gpu_ms["composite"] + gpu_ms["d2h"]}
            for k, ((frame, capture_ms), image) in enumerate(zip(items, batch.images, strict=True)):
                late = self._late(frame)
                if frame.placeholder or late:
                    if not fully_masked([(frame, capture_ms)], "reconnecting" if frame.placeholder else "late"):
                        return False
                    continue
                probability = batch.probabilities[k] if batch.probabilities is not None else None
                result = Result(frame, probability, None, image, {"capture": capture_ms, **timings},
                                masked_share=batch.coverage[k])
                if not self._put(self._results, result):
                    return False
            return True

        while True:
            batch, tail = self._next_batch()
            for items in same_size_batches(batch):  # one GPU batch holds frames of one size
                error: Exception | None = None
                try:
                    ticket = stage.submit([frame.bgr for frame, _ in items],
                                          [frame.stream for frame, _ in items] if several else None,
                                          [self._time_of(frame) for frame, _ in items])
                except Exception as exc:
                    error = exc
                if pending is not None and not finish(*pending):
                    return
                pending = None
                if error is not None:
                    if not failed(items, error):
                        return
                else:
                    pending = (ticket, items)
            if tail is not None:
                if pending is not None:
                    finish(*pending)
                self._put(self._results, tail)
                return

    def _fully_masked(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """Fail closed (both paths): no trustworthy mask for this frame, so all of it is masked — (alpha, image)."""
        return self.masker.fully_masked(frame, self._time_of(frame))

    def _time_of(self, frame: Frame) -> float:
        """The frame's time on its source's clock: where it is in the output video, and where a background video
        is behind it."""
        return frame.time_on(self.sources[frame.stream].clock)

    def _late(self, frame: Frame) -> bool:
        """Privacy on a live source: the frame's mask comes later than the mask budget after capture."""
        return self.privacy and self.live and time.monotonic() - frame.capture_ts > self.mask_budget_s

    def _gpu_composite(self) -> Any:
        """The composite on the GPU when the engine is on one (the host made the mask: inference strategies), else
        None (the CPU reference composites). Where the GPU composite cannot start, the CPU does it, said once."""
        from realtime.pipeline.gpu import gpu_composite_or_none

        return gpu_composite_or_none(self.compositor, self.engine.device, self._emulate_gpu) \
            if self._composite_on_gpu else None

    def _composite_loop(self) -> None:
        gpu = self._gpu_composite()
        while True:
            item = self._get(self._masks)
            if item is _END or isinstance(item, _Failure):
                self._put(self._results, item)
                return
            frame, probability, timings = item
            start = time.perf_counter()
            late = probability is not None and self._late(frame)
            alpha, image, reason = self.masker.composite(frame, probability, late=late, at=self._time_of(frame),
                                                         gpu=gpu)
            timings["composite"] = (time.perf_counter() - start) * 1000.0
            if not self._put(self._results, Result(frame, probability, alpha, image, timings, fully_masked=reason)):
                return

    def _start(self) -> None:
        if self._threads:
            return
        prepare = getattr(self.engine, "prepare", None)
        if prepare is not None:  # compile / capture for the batch size before capture starts, not mid-stream
            prepare(self.batch)
        self._started_at = time.monotonic()
        workers: list[tuple[str, Callable[[], None], queue.Queue[Any]]] = [
            (f"capture{k or ''}", functools.partial(self._capture_loop, k), self._frames) for k in range(len(self.sources))]
        on_gpu = self.engine.device.startswith("cuda") or self._emulate_gpu
        if on_gpu and not self._emulate_gpu and importlib.util.find_spec("cuda.core") is None:
            log.warning("the engine runs on the GPU, but masks are composited on the CPU: the GPU path's kernels need "
                        "cuda-python (pip install 'realtime-masking[cuda]')")
            on_gpu = False
        self._composite_on_gpu = on_gpu
        if on_gpu and hasattr(self.engine, "infer_tensor") and self.masker.strategies is None:
            workers.append(("gpu", self._gpu_loop, self._results))
        else:
            workers += [("engine", self._engine_loop, self._masks), ("composite", self._composite_loop, self._results)]
        for name, body, downstream in workers:
            thread = threading.Thread(target=self._worker, args=(body, downstream), name=f"pipeline-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # --- main thread ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Result]:
        """Run the pipeline and yield each result after it is written; closes at the end."""
        self._signals.install()
        try:
            self._start()
            while True:
                item = self._get(self._results, idle=self._stats_now)  # --stats goes on while no frame comes
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                stream = item.frame.stream
                if self.max_frames is not None and self._written[stream] >= self.max_frames:
                    continue  # a live stream's frames beyond its count, in flight when it reached it
                with self._signals:  # the frame, its mask and its metadata line are written together or not at all
                    if not self._write(item):
                        return
                self._written[stream] += 1
                if self._paced_for is not None:  # said once the outputs are up (an RTSP server's port: at the first)
                    log.warning("the source plays at its own frame rate for %s, as in a player (--no-realtime: as fast "
                                "as it decodes)", self._paced_for)
                    self._paced_for = None
                yield item
                self._stats_now()
                if self.max_frames is not None and min(self._written) >= self.max_frames:
                    return
        finally:
            try:
                self.close()
            finally:
                self._signals.uninstall()

    def _write(self, item: Result) -> bool:
        """Write one result to its sink, mask archive, metadata and statistics; False when the sink asks to stop."""
        start = time.perf_counter()
        sink, archive = self.sinks[item.frame.stream], self.archives[item.frame.stream]
        at = self._time_of(item.frame)  # where a --segment cut falls: the same frame for each of the stream's files
        if sink is not None:
            try:
                sink.write(item.image, capture_ts=item.frame.capture_ts, present_ts=at)
            except StopRequested:
                return False
        if item.fully_masked is not None:
            self._written_masked[item.frame.stream][item.fully_masked] += 1
        if archive is not None:
            # a frame without a mask is stored as all-person (255): what the output shows
            archive.add(item.probability if item.probability is not None
                        else np.full(item.frame.bgr.shape[:2], 255, np.uint8), at, item.frame.capture_ts)
        item.written_ts = time.monotonic()
        item.timings_ms["output"] = (time.perf_counter() - start) * 1000.0
        self.stats.add(item.timings_ms, item.end_to_end_ms, item.frame.stream)
        if self.metadata is not None:
            try:
                self.metadata.write(item, at)
            except StopRequested:  # its reader on standard output went away
                return False
        return True

    def run(self, on_result: Callable[[Result], None] | None = None) -> RunStats:
        """Process until end of stream (or :meth:`close`); ``on_result`` runs on this thread per frame."""
        for result in self:
            if on_result is not None:
                on_result(result)
        return self.stats

    def _close_owned(self) -> None:
        errors = []
        for thing in reversed(self._owned):
            try:
                thing.close()
            except Exception as exc:
                errors.append(exc)
        self._owned.clear()
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Stop the threads and finalise every output (idempotent)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        with self._signals:  # a second Ctrl-C while files are finalised waits until they are
            self._close_all()

    def _close_all(self) -> None:
        wall_s = time.monotonic() - self._started_at if self._started_at else 0.0
        self._stop.set()
        for source in self.sources:
            source.interrupt()  # wakes a capture thread waiting for the next frame (a live source, a pipe)
        for thread in self._threads:
            thread.join(timeout=10.0)
        self.stats = self._summed(wall_s)
        try:
            self._close_owned()
        finally:
            if self._stats_file is not None:
                self._stats_file.write(self.stats)

    def _summed(self, wall_s: float, running: bool = False) -> RunStats:
        """The run's statistics as of now: the frames' times (:attr:`stats`, left as it is) with the sources',
        strategies' and privacy's counters summed in, and each stream's part (several sources)."""
        stats = copy.copy(self.stats)
        stats.counters, stats.wall_s, stats.dropped, stats.running = dict(stats.counters), wall_s, self.dropped, running
        stats.reconnecting = sum(bool(getattr(source, "reconnecting", False)) for source in self.sources)
        for source in self.sources:  # live sources' counters, summed over the sources
            if (live_stats := getattr(source, "stats", None)) is not None:
                stats.count(live_stats)
        for strategy in self.masker.strategies or []:
            stats.count({"strategy_skipped_frames": strategy.stats.skipped,
                         "strategy_engine_crops": strategy.stats.engine_crops})
        for counts in self._written_masked if self.privacy else []:  # as written: the streams' parts add up to it
            stats.count({f"privacy_masked_{k}": v for k, v in counts.items()})
        if len(self.sources) > 1:
            stats.streams = [self._stream_stats(k) for k in range(len(self.sources))]
        return stats

    def _stats_now(self) -> None:
        """``--stats FILE`` rewritten while the run goes on, every :data:`STATS_EVERY_S` (a 24/7 run's health)."""
        if self._stats_file is not None and self._stats_file.due():
            self._stats_file.write(self._summed(time.monotonic() - self._started_at, running=True))

    def _stream_stats(self, stream: int) -> dict[str, Any]:
        """One stream's part of the run (several sources): its frames written, dropped and counters."""
        source = self.sources[stream]
        last = self.stats.last_written.get(stream)
        stats: dict[str, Any] = {"source": redact(source.uri), "frames": self._written[stream],
                                 "dropped": self._dropped_of(stream), "last_written_at": last and utc(last),
                                 "reconnecting": bool(getattr(source, "reconnecting", False))}
        if isinstance(live := getattr(source, "stats", None), LiveStats):
            stats.update({key: value for key, value in vars(live).items() if key != "dropped"})
        if self.privacy:
            stats.update({f"privacy_masked_{k}": v for k, v in self._written_masked[stream].items()})
        return stats

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
