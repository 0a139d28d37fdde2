"""Fail-closed privacy: engine errors, engine stalls and source drops never let a raw person pixel out."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from engines.backends.base import Engine
from realtime.capture import SourceOptions
from realtime.pipeline import Pipeline
from tests.common import MEDIA, REFERENCE, MjpegServer, need_shared

BLACK = "0,0,0"


class FlakyEngine(Engine):
    """A real engine that fails or stalls on chosen calls (the fault is injected, the masks are real)."""

    def __init__(self, inner: Engine, fail_every: int = 0, stall_on: int = -1, stall_s: float = 0.0) -> None:
        super().__init__(inner.model_name, inner.spec, inner.device, inner.precision)
        self.inner, self.fail_every, self.stall_on, self.stall_s = inner, fail_every, stall_on, stall_s
        self.calls = 0

    def _fault(self) -> None:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("injected engine failure")
        if self.calls == self.stall_on:
            time.sleep(self.stall_s)

    def _run(self, batch):
        self._fault()
        return self.inner._run(batch)


class FlakyTorchEngine(FlakyEngine):
    """The same faults for the GPU path, which calls ``infer_tensor`` (a torch engine)."""

    def infer_tensor(self, batch):
        self._fault()
        return self.inner.infer_tensor(batch)


@pytest.fixture(params=["cpu path", "gpu path"])
def flaky(request, engine, torch_engine, monkeypatch):
    """Wraps an engine for each path: the CPU path, and the pipeline's GPU loop run on the CPU
    ($REALTIME_MASK_EMULATE_GPU=1: a torch engine, the CUDA kernels emulated)."""
    if request.param == "cpu path":
        monkeypatch.setenv("REALTIME_MASK_EMULATE_GPU", "0")
        return lambda **faults: FlakyEngine(engine, **faults)
    monkeypatch.setenv("REALTIME_MASK_EMULATE_GPU", "1")
    return lambda **faults: FlakyTorchEngine(torch_engine, **faults)


def person_core(reference_mask: np.ndarray) -> np.ndarray:
    """Pixels MediaPipe is sure are a person (eroded, so boundary rounding cannot matter)."""
    return cv2.erode((reference_mask >= 200).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


def test_engine_errors_are_written_fully_masked(flaky, tmp_path):
    need_shared()
    import json

    reference = np.load(REFERENCE / "carphone_pristine.model0.npz")["masks"]
    with Pipeline(str(MEDIA / "carphone_pristine.mp4"), flaky(fail_every=3), "fill", mode_options={"color": BLACK},
                  max_frames=60, metadata=str(tmp_path / "m.jsonl")) as pipeline:
        results = list(pipeline)
    assert len(results) == 60 and pipeline.privacy
    failed = [r for r in results if r.probability is None and r.alpha is not None]  # written fully masked
    assert len(failed) == 20 and pipeline.stats.counters["privacy_masked_engine_error"] == 20
    # each result (and its --metadata line) says why: an audit can tell these from a frame that is all person
    failed_ids = {id(r) for r in failed}
    assert [r.fully_masked for r in results] == ["engine_error" if id(r) in failed_ids else None for r in results]
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [line["fully_masked"] for line in lines] == [r.fully_masked for r in results]
    for result in failed:
        assert not result.image.any(), "a frame without a mask must be fully masked"
    for result in results:
        core = person_core(reference[result.frame.index])
        assert not result.image[core].any(), f"raw person pixels in frame {result.frame.index}"


def test_without_privacy_an_engine_error_stops_the_run(flaky):
    need_shared()
    with pytest.raises(RuntimeError, match="injected"):
        list(Pipeline(str(MEDIA / "carphone_pristine.mp4"), flaky(fail_every=2), "overlay", max_frames=10))


def _clip_index(frame: np.ndarray, clip: list[np.ndarray]) -> int:
    errors = [np.mean((frame.astype(np.int16) - c.astype(np.int16)) ** 2) for c in clip]
    return int(np.argmin(errors))


def test_stall_and_source_drop_on_a_live_camera(flaky):
    need_shared()
    reference = np.load(REFERENCE / "carphone_pristine.model0.npz")["masks"]
    capture = cv2.VideoCapture(str(MEDIA / "carphone_pristine.mp4"))
    clip = [capture.read()[1] for _ in range(120)]
    server = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=30)
    stalling = flaky(stall_on=20, stall_s=1.0)
    results, outage = [], {}

    def drop_and_return():
        nonlocal server
        time.sleep(3.0)
        port = server.port
        server.stop()
        outage["start"] = time.monotonic()
        time.sleep(1.5)
        server = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=30, port=port)
        outage["end"] = time.monotonic()

    pipeline = Pipeline(server.url, stalling, "fill", mode_options={"color": BLACK}, mask_budget_ms=300,
                        source_options=SourceOptions(open_timeout=3, read_timeout=5))
    threading.Thread(target=drop_and_return, daemon=True).start()
    start = time.monotonic()
    try:
        for result in pipeline:
            results.append(result)
            if time.monotonic() - start > 8.0:
                break
    finally:
        pipeline.close()
        server.stop()
    counters = pipeline.stats.counters
    assert counters["privacy_masked_late"] >= 1, counters  # the stalled call's frames came too late
    assert counters["privacy_masked_reconnecting"] >= 10, counters  # placeholders while the camera was gone
    reasons = [r.fully_masked for r in results]  # each result says why it was written fully masked
    assert reasons.count("late") == counters["privacy_masked_late"]
    assert reasons.count("reconnecting") == counters["privacy_masked_reconnecting"]
    assert all((reason == "reconnecting") == r.frame.placeholder for r, reason in zip(results, reasons, strict=True))
    assert counters["disconnects"] >= 1 and counters["reconnects"] >= 1
    during = [r for r in results if outage["start"] + 0.3 < r.frame.capture_ts < outage["end"]]
    assert during and all(r.frame.placeholder for r in during)
    assert len(during) >= 0.5 * 30 * (outage["end"] - outage["start"] - 0.3), "output keeps the stream's rate"
    for result in results:
        if result.frame.placeholder or (result.probability is None and result.alpha is not None):
            assert not result.image.any()
            continue
        core = person_core(reference[_clip_index(result.frame.bgr, clip)])
        assert not result.image[core].any(), "raw person pixels in an output frame"


def test_privacy_flags_on_the_command_line(model_cache, tmp_path):
    need_shared()
    import json

    from realtime.cli import main

    clip = str(MEDIA / "carphone_pristine.mp4")
    for flags, mode, expected in (([], "blur", True), (["--no-privacy"], "blur", False), ([], "overlay", False),
                                  (["--privacy", "--mask-budget", "250"], "overlay", True)):
        stats = tmp_path / "s.json"
        assert main(["run", "--source", clip, "--output", "null", "--mode", mode, "--max-frames", "3",
                     "--stats", str(stats), *flags]) == 0
        assert json.loads(stats.read_text())["privacy"] is expected
    assert main(["run", "--source", clip, "--output", "null", "--mask-budget", "0", "--max-frames", "3"]) == 2


@pytest.mark.parametrize("path", ["cpu path", "gpu path"])
def test_smoothing_and_feathering_never_let_out_a_person_the_model_sees(engine, torch_engine, path, tmp_path,
                                                                        monkeypatch):
    """`--smooth 0.3 --feather 6` on a clip where people walk in: every pixel the model puts at or over the threshold in
    a frame is fully masked in that frame, on both paths. Before, the moving average held masks back (a person walking
    in stayed unmasked until it caught up) and the feather softened the mask inwards (the edge of each person half
    shown); below, with privacy off, as before: raw person pixels in most frames."""
    need_shared()
    from realtime.compositor import MaskSettings

    monkeypatch.setenv("REALTIME_MASK_EMULATE_GPU", "1" if path == "gpu path" else "0")
    runs = {}
    for privacy in (True, False) if path == "cpu path" else (True,):
        with Pipeline(str(MEDIA / "one-by-one-person-detection.mp4"), torch_engine if path == "gpu path" else engine,
                      "fill", mode_options={"color": BLACK}, mask=MaskSettings(ema_alpha=0.3, feather_px=6),
                      privacy=privacy,
                      max_frames=150, save_masks=str(tmp_path / "masks.npz")) as pipeline:
            runs[privacy] = [int((r.image[r.probability >= 0.5] != 0).any(axis=-1).sum()) for r in pipeline]
        assert pipeline.privacy is privacy and pipeline.mask_settings.fail_closed is privacy
    assert len(runs[True]) == 150 and sum(runs[True]) == 0
    if False in runs:
        assert sum(1 for shown in runs[False] if shown) > 50  # the plain average: raw person pixels in many frames
