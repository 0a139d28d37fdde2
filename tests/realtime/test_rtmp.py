"""RTMP input against a real RTMP server on loopback (nginx's RTMP module, a camera publishing a shared clip to it)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.capture import SourceOptions
from realtime.pipeline import Pipeline
from tests.common import MEDIA, RtmpServer, need_shared
from tests.realtime.test_rtsp import run_with_timeline

pytestmark = pytest.mark.skipif(RtmpServer.available() is not None, reason=str(RtmpServer.available()))


def test_an_rtmp_stream_is_masked_live_and_comes_back_after_the_server_does(engine, tmp_path):
    """`-i rtmp://server/live/cam` (before: "unknown source scheme 'rtmp://'", the stream relayed through ffmpeg and a
    pipe): masked as it comes, the first frame within a second and a half of opening (FFmpeg's default probing of
    RTMP read 5 s of it first, each frame then 5 s late); the server down and back, fully masked meanwhile."""
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
    assert results[0].written_ts - opened < 1.5
    live = [r for r in results if not r.frame.placeholder and r.written_ts < marks["killed"]]
    assert len(live) >= 0.7 * 30 * 3.0 and np.mean([r.coverage for r in live]) > 0.2  # every frame, masked
    assert max(r.end_to_end_ms for r in live) < 1000.0
    counters = pipeline.stats.counters
    assert counters["disconnects"] >= 1 and counters["reconnects"] >= 1, counters
    outage = [r for r in results if marks["killed"] + 0.6 < r.written_ts < marks["back"]]
    assert outage and all(r.frame.placeholder and r.fully_masked == "reconnecting" for r in outage)
    resumed = [r for r in results if not r.frame.placeholder and r.frame.capture_ts > marks["back"]]
    assert resumed and resumed[0].frame.capture_ts - marks["back"] < 3.0, "frames again within 3 s of its return"
