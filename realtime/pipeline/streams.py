"""Several streams in one pipeline: their sources opened together, the outputs of each stream (opened as one sink),
its sound, and GPU batches that hold one frame size.

Example:
    >>> one_per_stream("masked-{stream}.npz", 2, "mask archives", "--save-masks")
    ['masked-0.npz', 'masked-1.npz']
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from engines.errors import ConfigError, OutputError
from realtime.capture import Source, SourceOptions, VideoFileSource, open_source, redact
from realtime.capture.files import ImageFolderSource
from realtime.compositor import Compositor
from realtime.frame import Frame
from realtime.outputs import SOUND_SCHEMES, Sink, SinkOptions, normalise_sink, open_sink, sink_path
from realtime.outputs.audio import audio_codec
from realtime.outputs.files import VIDEO_FORMATS

log = logging.getLogger(__name__)


def one_per_stream(value: Any, count: int, what: str, flag: str) -> list[Any]:
    """One of a side output (a mask archive) per stream, or None: :func:`outputs_per_stream`, at most one each."""
    streams = outputs_per_stream(value, count, what, flag)
    if any(len(outputs) > 1 for outputs in streams):
        given = len(value) if isinstance(value, list | tuple) else 1
        raise ConfigError(f"{count} sources need {count} {what}, got {given}: repeat {flag} once per source, or give "
                          "one with {stream} in its name")
    return [outputs[0] if outputs else None for outputs in streams]


def outputs_per_stream(value: Any, count: int, what: str = "outputs", flag: str = "--output") -> list[list[Any]]:
    """The outputs of each of ``count`` streams. With one source, every output given (a recording and a live view at
    once); with several, one output per source, in order, and every output with ``{stream}`` in it (or ``null``) for
    each source. None: no output.

    Example:
        >>> outputs_per_stream(["a.mp4", "b.mp4", "rtsp://127.0.0.1:8554/cam{stream}"], 2)
        [['a.mp4', 'rtsp://127.0.0.1:8554/cam0'], ['b.mp4', 'rtsp://127.0.0.1:8554/cam1']]
    """
    given = [] if value is None else [str(v) if isinstance(v, Path) else v
                                      for v in (value if isinstance(value, list | tuple) else [value])]
    if count == 1:
        return [given]
    for_every = [isinstance(v, str) and ("{stream}" in v or v.strip() == "null") for v in given]
    own = [v for v, every in zip(given, for_every, strict=True) if not every]
    if own and len(own) != count:
        raise ConfigError(f"{count} sources need {count} {what}, got {len(own)}: repeat {flag} once per source, or "
                          "give one with {stream} in its name, which every source gets")
    streams: list[list[Any]] = [[] for _ in range(count)]
    next_own = 0  # the source whose own output comes next
    for output, every in zip(given, for_every, strict=True):
        if every:
            for k in range(count):
                streams[k].append(output.replace("{stream}", str(k)))
        else:
            streams[next_own].append(output)
            next_own += 1
    return streams


def same_size_batches(items: list[tuple[Frame, float]]) -> list[list[tuple[Frame, float]]]:
    """A batch cut into batches of one frame size (a GPU batch holds one size): grouped by size when every stream's
    frames in it share one size (cameras of two resolutions: two batches), else cut where the size changes (a folder
    of photos, a camera back at another resolution), so each stream's frames stay in order.

    Example:
        >>> import numpy as np
        >>> frame = lambda stream, h: (Frame(0, np.zeros((h, 8, 3), np.uint8), 0.0, 0.0, stream=stream), 0.0)
        >>> [[f.stream for f, _ in run] for run in same_size_batches([frame(0, 4), frame(1, 6), frame(2, 4)])]
        [[0, 2], [1]]
    """
    sizes: dict[int, set[tuple[int, ...]]] = {}
    for frame, _ in items:
        sizes.setdefault(frame.stream, set()).add(frame.bgr.shape)
    if all(len(shapes) == 1 for shapes in sizes.values()):
        groups: dict[tuple[int, ...], list[tuple[Frame, float]]] = {}
        for item in items:
            groups.setdefault(item[0].bgr.shape, []).append(item)
        return list(groups.values())
    runs: list[list[tuple[Frame, float]]] = []
    for item in items:
        if runs and runs[-1][-1][0].bgr.shape == item[0].bgr.shape:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def video_file_path(output: object) -> Path | None:
    """The video file an output string names (``out.mp4``, ``file:///rec/cam.mkv``); None for any other output.

    Example:
        >>> video_file_path("file:///rec/cam.mkv"), video_file_path("frames/"), video_file_path("display")
        (PosixPath('/rec/cam.mkv'), None, None)
    """
    path = sink_path(output)
    return path if path is not None and path.suffix.lower() in VIDEO_FORMATS else None


def holds_sound(output: object) -> bool:
    """An output that can carry the source's sound (``--audio copy``): a video file, an HLS playlist, the stream on
    standard output or an RTMP stream.

    Example:
        >>> holds_sound("out.mkv"), holds_sound("live.m3u8"), holds_sound("rtmp://server/a/k"), holds_sound("frames/")
        (True, True, True, False)
    """
    if not isinstance(output, str):
        return False
    try:
        scheme = normalise_sink(output).split("://", 1)[0]
    except OutputError:
        return False  # opening it says what is wrong
    return scheme in SOUND_SCHEMES and (scheme != "file" or video_file_path(output) is not None)


def audio_source(source: Source, outputs: list[str | Sink], copy: bool) -> str | None:
    """Where a stream's video-file outputs take their sound from: with ``copy``, its video-file source (a source
    that cannot give sound, or no output that can hold it, is an error); without, None, and a source with sound
    says so."""
    videos = [str(output) for output in outputs if holds_sound(output)]
    writes_video, output = bool(videos), ", ".join(videos or [str(o) for o in outputs])
    from_file = isinstance(source, VideoFileSource) and source.rereadable
    if copy and not writes_video:
        raise ConfigError(f"--audio copy writes sound into a video file output ({' '.join(VIDEO_FORMATS)}), an HLS "
                          f"playlist (.m3u8), standard output (-) or an RTMP stream, got {output}")
    if copy and isinstance(source, VideoFileSource) and not from_file:
        raise ConfigError(f"--audio copy cannot take the sound of {source.uri}: it is read once, for its video; give "
                          "the file, or add the sound to the output afterwards")
    if copy and not from_file:
        raise ConfigError(f"--audio copy takes the sound of a video file source; {source.uri} has none to give")
    codec = audio_codec(source.location) if writes_video and from_file else None  # type: ignore[attr-defined]
    if codec is None:
        if copy:
            log.warning("%s has no audio track; %s is written without sound", source.uri, output)
        return None
    if not copy:
        log.warning("%s has sound (%s); %s is written without it, as voices are personal data: --audio copy keeps "
                    "it", source.uri, codec, output)
        return None
    return source.location  # type: ignore[attr-defined]


def open_stream_sink(outputs: list[str | Sink], source: Source, options: SinkOptions, *, audio: bool,
                     compositor: Compositor, max_frames: int | None,
                     own: Callable[[Sink], Sink] = lambda sink: sink) -> Sink | None:
    """A stream's outputs opened as one sink (several: a :class:`TeeSink`), None without any; each opened sink is
    handed to ``own`` (to be closed with the run). ``options`` gives what every output of the run shares (segments);
    the frame rate, image names and sound come from ``source``.

    Raises:
        OutputError: an output that cannot take the stream: one image for many frames, BGRA frames for a format
            without alpha.

    Example:
        >>> from realtime.capture import open_source
        >>> from realtime.compositor import make_compositor
        >>> sink = open_stream_sink(["null"], open_source("synthetic:64x48@10?frames=2"), SinkOptions(), audio=False,
        ...                         compositor=make_compositor("blur"), max_frames=None)
        >>> sink.uri
        'null://'
    """
    from realtime.outputs.tee import TeeSink

    sound = audio_source(source, outputs, audio)
    options = replace(options, fps=source.fps or 25.0, names=[path.name for path in source.paths]
                      if isinstance(source, ImageFolderSource) else None)
    sinks = [out if isinstance(out, Sink) else own(open_sink(
        out, replace(options, audio_from=sound if holds_sound(out) else None))) for out in outputs]
    for sink in sinks:
        sink.live, sink.sample_aspect, sink.color = not source.keeps_every_frame, source.sample_aspect, source.color
        if sink.frame_limit is not None and min(max_frames or math.inf, source.frame_count or math.inf) \
                > sink.frame_limit:
            has = f"has {source.frame_count} frames" if source.frame_count else "is live" if source.live else \
                "has more than one frame"
            image = Path(sink.uri.partition("://")[2])
            raise OutputError(f"{image} is one image, but {redact(source.uri)} {has}; give --max-frames 1 for its "
                              f"first, or an image folder ({image.with_suffix('')}/) or a video file for all")
        if compositor.output_channels == 4 and not sink.accepts_alpha:
            raise OutputError(f"mode {compositor.name} makes BGRA frames, which {sink.uri} cannot hold; write .webm "
                              "(VP9 with alpha), an image folder or a .png, or use --cutout-format green")
    return None if not sinks else sinks[0] if len(sinks) == 1 else TeeSink(sinks)


def open_stream_sources(sources: list[str | Source], options: SourceOptions,
                        own: Callable[[Source], Source] = lambda source: source) -> list[Source]:
    """The run's sources opened (an open one as it is), each handed to ``own`` (to be closed with the run). With
    several, a live stream down at the start is opened in the background while the others go on, said once.

    Raises:
        SourceError: the source, or every one of several, does not open; or one of several files does not.
        ConfigError: live and file sources mixed.

    Example:
        >>> [source.uri for source in open_stream_sources(["synthetic:64x48@10"], SourceOptions())]
        ['synthetic:64x48@10']
    """
    if len(sources) > 1:  # a stream down at the start is opened in the background; the others go on
        options = replace(options, wait_if_down=True)
    opened = [source if isinstance(source, Source) else own(open_source(source, options)) for source in sources]
    down = [error for s in opened if (error := getattr(s, "down_at_start", None)) is not None]
    if down and (len(down) == len(opened) or not all(s.live for s in opened)):
        raise down[0]  # none is up (a wrong address, a network down), or it is among files: said now
    for error in down:
        log.warning("%s; opening it again and again (the reconnect backoff) while the other streams go on", error)
    if len({s.live for s in opened}) > 1:
        raise ConfigError("live and file sources cannot share a pipeline (files wait for the engine, live sources "
                          "drop stale frames); run them separately")
    return opened


def segment_origins(sources: list[Source], archives: Sequence[Any] = (), metadata: Any = None) -> list[float | None]:
    """What names each stream's segments (:attr:`realtime.outputs.segments.Segments.origins`), given to the streams'
    mask archives and to the metadata: for a file, when its recording began (its ``creation_time``) or else now, the
    run's start, plus the frame's place in it — a 1-hour file cut every 10 minutes gets names 10 minutes apart; None
    for a live source, named by capture time.

    Example:
        >>> from realtime.capture import open_source
        >>> segment_origins([open_source("synthetic:64x48@10?live=1")])
        [None]
    """
    now = time.time()
    origins = [None if source.live else source.recorded_at or now for source in sources]
    for archive, origin in zip(archives, origins, strict=False):  # none given: no archive
        if archive is not None and archive.segments is not None:
            archive.segments.origins = [origin]
    if metadata is not None and metadata.segments is not None:
        metadata.segments.origins = origins
    return origins
