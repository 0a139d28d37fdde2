"""RTMP input against a real RTMP server on loopback (nginx's RTMP module, a camera publishing a shared clip to it)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from realtime.capture import SourceOptions
from realtime.pipeline import Pipeline
from tests.common import MEDIA, RtmpServer, need_shared
from tests.realtime.test_rtsp import run_with_timeline

pytestmark = pytest.mark.skipif(RtmpServer.available() is not None, reason=str(RtmpServer.available()))


def test_an_rtmp_stream_is_masked_live_and_comes_back_after_the_server_does(engine, tmp_path):
    """`-i rtmp://server/live/cam` (before: "unknown source scheme 'rtmp://'", the stream relayed through ffmpeg and a
    pipe): masked as it comes, the first frame within 3 s of opening (with FFmpeg's default probing of RTMP the
    stream opened after 6 s); the server down and back, fully masked meanwhile."""
    need_shared()
    import time

    server = RtmpServer(MEDIA / "carphone_pristine.mp4", tmp_path)  # 30 fps, the person filling much of the frame
    try:
        time.sleep(1.0)  # the camera has published
        opened = time.monotonic()
        pipeline = Pipeline(server.url, engine, "blur", str(tmp_path / "out.mkv"),
                            source_options=SourceOptions(open_timeout=5, read_timeout=5))
        results, marks = run_with_timeline(pipeline, [(3.0, "killed", server.kill), (2.0, "back", server.start),
                                                      (5.0, "end", None)])
    finally:
        server.kill()
    assert results[0].written_ts - opened < 3.0  # a key frame a second, half a second probed; FFmpeg's default: 6 s
    live = [r for r in results if not r.frame.placeholder and r.written_ts < marks["killed"]]
    assert len(live) >= 0.7 * 30 * 3.0 and np.mean([r.coverage for r in live]) > 0.2  # every frame, masked
    assert max(r.end_to_end_ms for r in live) < 1000.0
    counters = pipeline.stats.counters
    assert counters["disconnects"] >= 1 and counters["reconnects"] >= 1, counters
    outage = [r for r in results if marks["killed"] + 0.6 < r.written_ts < marks["back"]]
    assert outage and all(r.frame.placeholder and r.fully_masked == "reconnecting" for r in outage)
    resumed = [r for r in results if not r.frame.placeholder and r.frame.capture_ts > marks["back"]]
    assert resumed and resumed[0].frame.capture_ts - marks["back"] < 3.0, "frames again within 3 s of its return"


def _read_rtmp(url: str, frames: int, timeout_s: float = 15.0) -> list[np.ndarray]:
    """Frames of an RTMP stream as a viewer gets them (OpenCV, probed for half a second), opening it again when a
    read fails, as a player does, until ``frames`` came or ``timeout_s`` passed."""
    import os
    import time

    import cv2

    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "analyzeduration;500000|probesize;200000"
    deadline, got = time.monotonic() + timeout_s, []
    try:
        while len(got) < frames and time.monotonic() < deadline:
            capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000])
            while capture.isOpened() and len(got) < frames and time.monotonic() < deadline:
                ok, image = capture.read()
                if not ok:
                    break
                got.append(image)
            capture.release()
    finally:
        del os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"]
    return got


def _magenta_share(image: np.ndarray) -> float:
    b, g, r = (image[..., k].astype(int) for k in range(3))
    return float(np.mean((b > 200) & (r > 200) & (g < 60)))


def test_the_masked_video_is_published_to_an_rtmp_server_and_again_after_it_was_down(model_cache, tmp_path):
    """`-o rtmp://server/live/KEY` (before: "unknown output scheme"; `-o - | ffmpeg -f flv rtmp://...`): a viewer of
    the published stream sees the camera's frames masked; the server down and back, the run goes on and publishes
    again; the stream key is in no message."""
    need_shared()
    import signal
    import subprocess
    import sys
    import time

    server = RtmpServer(MEDIA / "carphone_pristine.mp4", tmp_path)  # a camera publishing to live/cam
    published = f"rtmp://127.0.0.1:{server.port}/live/masked-s3cretKEY"
    run = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", "-i", server.url, "-o", published,
                            "--mode", "fill", "--color", "255,0,255", "--open-timeout", "5"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = _read_rtmp(published, 30)
        server.kill()
        time.sleep(2.0)
        server.start()
        again = _read_rtmp(published, 30, timeout_s=20.0)
        assert run.poll() is None, "the run went on while the server was down"
    finally:
        run.send_signal(signal.SIGTERM)
        stderr = run.communicate(timeout=30)[1]
        server.kill()
    assert len(first) == 30 and first[0].shape == (144, 176, 3)
    assert 0.2 < np.mean([_magenta_share(image) for image in first]) < 0.9  # the person filled, the rest shown
    assert len(again) == 30 and np.mean([_magenta_share(image) for image in again]) > 0.2
    assert run.returncode == 143 and "s3cretKEY" not in stderr, stderr
    assert "live/*** is behind" not in stderr or "skipped" in stderr
    assert stderr.count("connection lost") == 1 and stderr.count("***: publishing again\n") == 1, stderr  # once each


def test_audio_copy_publishes_the_files_sound_with_the_masked_video(model_cache, tmp_path):
    """-o rtmp://... --audio copy (before 2026-12-01: refused): a file's AAC is published beside the masked video, at
    the same times, and a viewer of the stream gets both, also once the server was down and back (the sound taken up
    again at the frame's time in the file)."""
    need_shared()
    import subprocess
    import sys
    import time

    import av

    server = RtmpServer(None, tmp_path)
    published = f"rtmp://127.0.0.1:{server.port}/live/masked"
    run = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", "-i", str(MEDIA / "car-detection.mp4"), "-o",
                            published, "--audio", "copy", "--max-frames", "125"], stderr=subprocess.PIPE, text=True)
    times: dict[str, list[float]] = {"video": [], "audio": []}
    try:
        time.sleep(3.0)  # publishing, at the clip's own pace (10 s)
        server.kill()
        time.sleep(2.0)
        server.start()
        time.sleep(1.5)
        with contextlib.suppress(av.FFmpegError), av.open(published, timeout=(5, 5)) as viewer:
            for packet in viewer.demux():  # until the run ends the stream
                if packet.pts is not None:
                    times[packet.stream.type].append(float(packet.pts * packet.time_base))
    finally:
        stderr = run.communicate(timeout=60)[1]
        server.kill()
    assert run.returncode == 0 and "1 reconnects" in stderr, stderr
    assert len(times["video"]) > 20 and len(times["audio"]) > 80, {kind: len(t) for kind, t in times.items()}
    assert abs(times["audio"][-1] - times["video"][-1]) < 0.2 and abs(times["audio"][0] - times["video"][0]) < 0.5
