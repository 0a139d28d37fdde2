"""Running the benchmark: each configuration of the matrix, MediaPipe beside it, and live latency.

Example:
    >>> from realtime.bench.matrix import Matrix
    >>> result = run_config(Matrix(source="synthetic:320x180@30"), Matrix(source="x").configs()[0])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import psutil

import engines
from realtime.bench.matrix import Config, Matrix
from realtime.capture import Source, SourceOptions, open_source
from realtime.compositor import MaskPostprocessor, MaskSettings, make_compositor
from realtime.frame import Frame
from realtime.pipeline import STAGES, Pipeline, summarise


class ResizedSource(Source):
    """Another source's frames scaled to a fixed (width, height), timestamps kept."""

    def __init__(self, inner: Source, resolution_wh: tuple[int, int]) -> None:
        self.inner, self.resolution_wh = inner, resolution_wh
        self.uri, self.fps, self.frame_count, self.live = inner.uri, inner.fps, inner.frame_count, inner.live
        self.keeps_every_frame, self.clock = inner.keeps_every_frame, inner.clock

    @property
    def dropped(self) -> int:  # type: ignore[override]
        return self.inner.dropped

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.inner:
            bgr = cv2.resize(frame.bgr, self.resolution_wh, interpolation=cv2.INTER_AREA)
            yield Frame(frame.index, bgr, frame.source_ts, frame.capture_ts)

    def close(self) -> None:
        self.inner.close()


class ResourceSampler:
    """Peak RSS (sampled every 20 ms) and CPU% of this process between start() and stop()."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)

    def __enter__(self) -> ResourceSampler:
        self.peak_rss = self.process.memory_info().rss
        self._times, self._wall = self.process.cpu_times(), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        times = self.process.cpu_times()
        wall = time.monotonic() - self._wall
        used = (times.user - self._times.user) + (times.system - self._times.system)
        self.cpu_percent = 100.0 * used / wall if wall > 0 else 0.0



def bench_background() -> np.ndarray:
    """The still background ``replace`` is measured with (its cost: a resize once per frame size, then the blend): a
    1280x720 colour ramp.

    Example:
        >>> bench_background().shape
        (720, 1280, 3)
    """
    ramp = np.linspace(0, 255, 1280, dtype=np.float32)[None, :] * np.linspace(0.3, 1.0, 720, dtype=np.float32)[:, None]
    return np.dstack([ramp, ramp[::-1], 255 - ramp]).astype(np.uint8)

def open_workload(matrix: Matrix, config: Config, total: int) -> Source:
    """The matrix's source at the configuration's resolution."""
    source = open_source(matrix.source, SourceOptions())
    if config.resolution_wh is not None:
        source = ResizedSource(source, config.resolution_wh)
    return source


def run_config(matrix: Matrix, config: Config) -> dict[str, Any]:
    """Run one configuration: load (timed apart), warm up, then measure ``matrix.frames`` frames."""
    if config.device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(config.device)  # this configuration's peak, not the run's so far
    start = time.perf_counter()
    engine = engines.load(config.model, backend=config.backend, device=config.device, precision=config.precision)
    load_s = time.perf_counter() - start
    total = matrix.warmup + matrix.frames
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    end_to_end: list[float] = []
    capture_ts: list[float] = []
    written_ts: list[float] = []
    sources = [open_workload(matrix, config, total) for _ in range(config.streams)]  # warm-up and frames: each
    options = {"background": bench_background()} if config.mode == "replace" else None
    with ResourceSampler() as resources, Pipeline(sources, engine, config.mode, "null", batch=config.batch,
                                                  mode_options=options, max_frames=total) as pipeline:
        for count, result in enumerate(pipeline):
            if count < matrix.warmup * config.streams:
                continue
            for stage in STAGES:
                samples[stage].append(result.timings_ms.get(stage, 0.0))
            end_to_end.append(result.end_to_end_ms)
            capture_ts.append(result.frame.capture_ts)
            written_ts.append(result.written_ts)
    for source in sources:
        source.close()
    gpu_mem = None
    if config.device.startswith("cuda"):
        import torch

        gpu_mem = torch.cuda.max_memory_allocated(config.device) / 2**20
    engine.close()
    measured = len(end_to_end)
    wall = (written_ts[-1] - capture_ts[0]) if measured else 0.0
    origin = capture_ts[0] if measured else 0.0
    return {
        "config": vars(config) | {}, "label": config.label, "load_s": load_s, "frames": measured,
        "throughput_fps": measured / wall if wall > 0 else 0.0, "dropped": pipeline.stats.dropped,
        "cpu_percent": resources.cpu_percent, "peak_rss_mb": resources.peak_rss / 2**20, "gpu_mem_mb": gpu_mem,
        "stages": {stage: summarise(values) for stage, values in samples.items()},
        "end_to_end": summarise(end_to_end),
        "samples": {**{stage: [round(v, 4) for v in values] for stage, values in samples.items()},
                    "end_to_end": [round(v, 4) for v in end_to_end]},
        "timeline": {"capture_ms": [round((t - origin) * 1000, 3) for t in capture_ts],
                     "written_ms": [round((t - origin) * 1000, 3) for t in written_ts]},
    }


def decoded_frames(matrix: Matrix, limit: int, resolution_wh: tuple[int, int] | None) -> list[np.ndarray]:
    """The first ``limit`` frames of the workload, decoded once (for side-by-side runs)."""
    frames = []
    source = open_source(matrix.source)
    try:
        for frame in source:
            bgr = frame.bgr if resolution_wh is None else cv2.resize(frame.bgr, resolution_wh, interpolation=cv2.INTER_AREA)
            frames.append(bgr)
            if len(frames) >= limit:
                break
    finally:
        source.close()
    return frames


def mediapipe_side_by_side(matrix: Matrix, blur_strength: int = 15) -> dict[str, Any]:
    """MediaPipe's own runtime and ours on the same decoded frames, mask only and mask + blur."""
    from realtime.bench.mediapipe_side import mediapipe_times

    frames = decoded_frames(matrix, matrix.warmup + matrix.frames, None)
    rgb = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames])
    theirs = mediapipe_times(rgb, 0, matrix.warmup, blur_strength=blur_strength)
    ours_mask, ours_blur = [], []
    with engines.load("mediapipe-selfie") as engine:
        post, blur = MaskPostprocessor(MaskSettings()), make_compositor("blur", strength=blur_strength)
        for k, frame in enumerate(frames):
            start = time.perf_counter()
            probability = engine.predict(frame)
            middle = time.perf_counter()
            blur.composite(frame, post(probability))
            end = time.perf_counter()
            if k >= matrix.warmup:
                ours_mask.append((middle - start) * 1000)
                ours_blur.append((end - start) * 1000)
    result: dict[str, Any] = {"frames": len(ours_mask), "resolution": f"{frames[0].shape[1]}x{frames[0].shape[0]}"}
    for name, mine, other in (("mask", ours_mask, theirs["mask_s"]), ("mask_blur", ours_blur, theirs["mask_blur_s"])):
        their_ms = [s * 1000 for s in other[matrix.warmup:]]  # the runner times every frame; measure the same ones
        result[name] = {"ours": summarise(mine), "mediapipe": summarise(their_ms),
                        "ratio_p50": float(np.median(mine) / np.median(their_ms))}
    result["mediapipe_version"] = theirs.get("mediapipe")
    return result


def live_latency(seconds: float, resolution: str = "1280x720", fps: int = 30) -> dict[str, Any]:
    """Glass-to-glass latency (capture → written) of a real-time source with masking, and with a pass-through."""
    import tempfile

    from realtime.outputs import SinkOptions, open_sink

    source_text = f"synthetic:{resolution}@{fps}?live=1"
    with tempfile.TemporaryDirectory() as tmp:
        masked: list[float] = []
        with Pipeline(source_text, mode="blur", output=f"{tmp}/masked.mp4") as pipeline:
            deadline = time.monotonic() + seconds
            for result in pipeline:
                masked.append(result.end_to_end_ms)
                if time.monotonic() >= deadline:
                    break
        dropped = pipeline.stats.dropped
        passthrough: list[float] = []
        with open_source(source_text) as source, open_sink(f"{tmp}/pass.mp4", SinkOptions(fps)) as sink:
            deadline = time.monotonic() + seconds
            for frame in source:
                sink.write(frame.bgr)
                passthrough.append((time.monotonic() - frame.capture_ts) * 1000)
                if time.monotonic() >= deadline:
                    break
    return {"seconds": seconds, "source": source_text, "masked": summarise(masked), "masked_dropped": dropped,
            "passthrough": summarise(passthrough),
            "added_latency_p50_ms": float(np.median(masked) - np.median(passthrough))}
