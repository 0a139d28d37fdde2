"""RTSP input against a real RTSP server on loopback (GStreamer's gst-rtsp-server fed from the shared clips)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engines.errors import OutputError, SourceError
from realtime.capture import SourceOptions, open_source
from realtime.capture.files import read_frames
from realtime.pipeline import Pipeline
from tests.common import MEDIA, RtspServer, SlowEngine, need_shared
from tests.realtime.test_cli_models import assert_one_line_error, run_cli

pytestmark = pytest.mark.skipif(RtspServer.available() is not None, reason=str(RtspServer.available()))


def run_with_timeline(pipeline, steps):
    """Run the pipeline, doing each step (seconds after the previous one — the first: after the first frame was
    written —, name, action or None) as its time comes, and stop after the last. Returns (results, name -> time)."""
    results, marks, pending = [], {}, list(steps)
    try:
        for result in pipeline:
            results.append(result)
            since = max(marks.values()) if marks else results[0].written_ts
            if time.monotonic() - since > pending[0][0]:
                _, name, action = pending.pop(0)
                if action is not None:
                    action()
                marks[name] = time.monotonic()
                if not pending:
                    break
    finally:
        pipeline.close()
    return results, marks


def test_server_killed_and_restarted_pipeline_keeps_writing(engine, tmp_path):
    need_shared()
    server = RtspServer(MEDIA / "one-by-one-person-detection.mp4")
    pipeline = Pipeline(server.url, engine, "blur", str(tmp_path / "out.mp4"),
                        source_options=SourceOptions(open_timeout=5, read_timeout=5))
    try:
        results, marks = run_with_timeline(pipeline, [(3.0, "killed", server.kill), (2.0, "back", server.start),
                                                      (4.0, "end", None)])
    finally:
        server.kill()
    counters = pipeline.stats.counters
    assert counters["disconnects"] >= 1 and counters["reconnects"] >= 1, counters
    resumed = [r for r in results if not r.frame.placeholder and r.frame.capture_ts > marks["back"]]
    assert resumed, "frames must come again after the server returns"
    assert resumed[0].frame.capture_ts - marks["back"] < 2.0, "reconnect within 2 s of the server's return"
    outage = [r for r in results if marks["killed"] + 0.6 < r.written_ts < marks["back"]]
    assert outage and all(r.frame.placeholder for r in outage)
    assert len(outage) >= 0.5 * 10 * (marks["back"] - marks["killed"] - 0.6), "output keeps the stream's 10 fps"
    for r in outage:  # placeholders are written fully masked (blur of the whole last frame), never raw
        assert not np.array_equal(r.image, r.frame.bgr)
    assert counters["privacy_masked_reconnecting"] == sum(r.frame.placeholder for r in results)


def test_latency_does_not_grow_with_a_slow_consumer(engine):
    need_shared()
    server = RtspServer(MEDIA / "one-by-one-person-detection.mp4")  # 10 fps: one frame every 100 ms
    interval = 0.1
    try:
        pipeline = Pipeline(server.url, SlowEngine(engine, 0.13), "pixelate", "null", privacy=False,
                            source_options=SourceOptions(open_timeout=5))
        ages = []
        start = time.monotonic()
        for result in pipeline:
            ages.append(result.end_to_end_ms / 1000.0)
            if time.monotonic() - start > 60.0:
                break
        pipeline.close()
    finally:
        server.kill()
    ages = np.array(ages[5:])
    assert pipeline.stats.dropped > 50, "a slower consumer must drop frames"
    # age = waiting for the next frame (< 1 interval) + processing (0.13 s + the pipeline's own work)
    assert np.percentile(ages, 99) <= 2 * interval + 0.13 + 0.1, np.percentile(ages, 99)
    first, last = ages[: len(ages) // 4].mean(), ages[-len(ages) // 4:].mean()
    assert last <= first + 0.03, f"latency grew from {first:.3f} s to {last:.3f} s"


def test_bad_stream_inputs_fail_after_the_open_timeout(tmp_path):
    need_shared()
    import functools
    import http.server
    import threading

    server = RtspServer(MEDIA / "carphone_pristine.mp4", user="viewer", password="s3cret")
    (tmp_path / "page.html").write_text("<html>not a video</html>")
    http_server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    try:
        good = f"rtsp://viewer:s3cret@127.0.0.1:{server.port}/live"
        with open_source(good, SourceOptions(open_timeout=5)) as source:
            assert next(iter(source)).resolution_wh == (176, 144)
            assert "s3cret" not in source.uri
        stats, meta = tmp_path / "stats.json", tmp_path / "meta.jsonl"
        ok = run_cli("-v", "run", "--source", good, "--max-frames", "5", "--output", "null", "--stats", str(stats),
                     "--metadata", str(meta))
        assert ok.returncode == 0, ok.stderr
        for text in (ok.stdout, ok.stderr, stats.read_text(), meta.read_text()):
            assert "s3cret" not in text and "viewer:" not in text, "credentials must never be printed or written"
        assert "rtsp://***@127.0.0.1" in stats.read_text()
        cases = {
            "unreachable host": "rtsp://127.0.0.1:9/live",
            "wrong path": f"rtsp://viewer:s3cret@127.0.0.1:{server.port}/nothing",
            "wrong credentials": f"rtsp://viewer:wrong@127.0.0.1:{server.port}/live",
            "non-video URL": f"http://127.0.0.1:{http_server.server_address[1]}/page.html",
        }
        for name, url in cases.items():
            start = time.monotonic()
            with pytest.raises(SourceError, match="cannot open"):
                open_source(url, SourceOptions(open_timeout=3))
            assert time.monotonic() - start < 8, f"{name} must fail after the open timeout, not hang"
        result = run_cli("run", "--source", cases["wrong credentials"], "--open-timeout", "3",
                         "--output", str(tmp_path / "o.mp4"))
        assert_one_line_error(result, "cannot open rtsp://***@127.0.0.1")
        assert "wrong" not in result.stderr and "viewer" not in result.stderr
    finally:
        server.kill()
        http_server.shutdown()


def test_rtsp_output_is_read_back_masked_and_survives_a_crash(engine):
    need_shared()
    import threading

    from realtime.outputs.rtsp import RtspSink
    from tests.common import MjpegServer, free_port

    camera = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=25)
    port = free_port()
    sink = RtspSink(f"127.0.0.1:{port}/masked", fps=25)
    pipeline = Pipeline(camera.url, engine, "fill", sink, mode_options={"color": "255,0,255"})
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()

    def read_back(count):
        deadline = time.monotonic() + 20
        while sink.process is None and time.monotonic() < deadline:
            time.sleep(0.1)
        with open_source(f"rtsp://127.0.0.1:{port}/masked", SourceOptions(open_timeout=5, read_timeout=5)) as client:
            frames = []
            for frame in client:
                frames.append(frame.bgr)
                if len(frames) >= count:
                    return frames
        return frames

    try:
        frames = read_back(20)
        assert len(frames) == 20 and frames[0].shape == (144, 176, 3)
        magenta = [np.mean(np.all(np.abs(f.astype(int) - (255, 0, 255)) < 60, axis=2)) for f in frames]
        assert min(magenta) > 0.05, "frames read back from the RTSP output must be masked"
        sink.process.kill()  # the encoder/server dies...
        time.sleep(1.0)
        again = read_back(10)  # ...the sink restarts it and a client can read again
        assert len(again) == 10 and sink.restarts >= 1
    finally:
        pipeline.close()
        runner.join(timeout=10)
        sink.close()
        camera.stop()


def test_soak_10000_frames_with_server_restarts(engine, tmp_path):
    """Bounded soak: >= 10,000 frames over RTSP, the server killed every 15 s; memory, threads and fds stay flat."""
    need_shared()
    import os
    import threading

    import cv2
    import psutil

    # The carphone clip re-timed to 120 fps (10 loops, MPEG-4 Part 2 so OpenCV can write it): ~10 s a session.
    clip = tmp_path / "fast.mp4"
    capture = cv2.VideoCapture(str(MEDIA / "carphone_pristine.mp4"))
    frames = [capture.read()[1] for _ in range(120)]
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 120, (176, 144))
    for _ in range(10):
        for frame in frames:
            writer.write(frame)
    writer.release()
    server = RtspServer(clip, mpeg4=True)
    process = psutil.Process()
    threads_before, fds_before = threading.active_count(), len(os.listdir("/proc/self/fd"))
    pipeline = Pipeline(server.url, engine, "blur", "null", privacy=False,
                        source_options=SourceOptions(open_timeout=5, read_timeout=5))
    rss_warm, restarts, last_restart = None, 0, time.monotonic()
    deadline = time.monotonic() + 240
    try:
        for _ in pipeline:
            captured = pipeline.source.stats.captured
            if rss_warm is None and captured >= 1500:
                rss_warm = process.memory_info().rss
            if time.monotonic() - last_restart > 15:
                server.kill()
                time.sleep(0.3)
                server.start()
                restarts, last_restart = restarts + 1, time.monotonic()
            if captured >= 10_000 or time.monotonic() > deadline:
                break
        rss_end = process.memory_info().rss
    finally:
        pipeline.close()
        server.kill()
    stats = pipeline.source.stats
    assert stats.captured >= 10_000, f"only {stats.captured} frames in the time allowed"
    assert restarts >= 3 and stats.reconnects >= restarts
    assert rss_warm is not None and (rss_end - rss_warm) / rss_warm < 0.05, (rss_warm, rss_end)
    time.sleep(0.5)
    assert threading.active_count() <= threads_before, "threads leaked"
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2, "file descriptors leaked"


def test_two_cameras_at_once_one_drops_and_the_other_keeps_going(engine):
    """Two RTSP cameras in one pipeline, batched: when one camera's server dies, the other keeps delivering real frames
    at its rate, and the dead one's stream is written as fully masked placeholders, never raw."""
    need_shared()
    servers = [RtspServer(MEDIA / "one-by-one-person-detection.mp4"), RtspServer(MEDIA / "carphone_pristine.mp4")]
    pipeline = Pipeline([server.url for server in servers], engine, "blur", None, batch=2,
                        source_options=SourceOptions(open_timeout=5, read_timeout=5))
    try:
        results, marks = run_with_timeline(pipeline, [(3.0, "killed", servers[1].kill), (3.0, "end", None)])
    finally:
        for server in servers:
            server.kill()
    before = [r for r in results if r.written_ts < marks["killed"]]
    assert {r.frame.stream for r in before} == {0, 1}, "both cameras delivered before the drop"
    after = [r for r in results if r.written_ts > marks["killed"] + 1.0]
    alive, dead = ([r for r in after if r.frame.stream == k] for k in (0, 1))
    assert len(alive) >= 0.5 * 10 * 2.0 and not any(r.frame.placeholder for r in alive), len(alive)
    assert dead and all(r.frame.placeholder for r in dead)
    for r in dead:  # fully masked: the blur of the whole last frame
        assert not np.array_equal(r.image, r.frame.bgr)
    assert pipeline.stats.counters["disconnects"] >= 1


def test_two_streams_served_on_one_port_each_at_its_own_path(engine):
    """-o rtsp://127.0.0.1:PORT/cam{stream}: two cameras' masked streams from one server process on one port, read
    back by an RTSP client at each path, each at its own size; two outputs on one path are a one-line error."""
    need_shared()
    import threading

    from realtime.outputs import open_sink
    from tests.common import MjpegServer, free_port

    cameras = [MjpegServer(MEDIA / "carphone_pristine.mp4", fps=25),
               MjpegServer(MEDIA / "head-pose-face-detection-female-and-male.gif", fps=25)]
    port = free_port()
    pipeline = Pipeline([camera.url for camera in cameras], engine, "fill", f"rtsp://127.0.0.1:{port}/cam{{stream}}",
                        mode_options={"color": "255,0,255"})
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    try:
        assert pipeline.sinks[0].server is pipeline.sinks[1].server  # one process serves both paths
        with pytest.raises(OutputError, match="two outputs at"):
            open_sink(f"rtsp://127.0.0.1:{port}/cam1")
        deadline = time.monotonic() + 20
        while not all(sink.frames_written for sink in pipeline.sinks) and time.monotonic() < deadline:
            time.sleep(0.1)
        shapes = []
        for stream in (0, 1):
            with open_source(f"rtsp://127.0.0.1:{port}/cam{stream}", SourceOptions(open_timeout=5, read_timeout=5)) as client:
                frames = [frame.bgr for frame, _ in zip(client, range(10), strict=False)]
            assert len(frames) == 10
            shapes.append(frames[0].shape)
            magenta = [np.mean(np.all(np.abs(f.astype(int) - (255, 0, 255)) < 60, axis=2)) for f in frames]
            assert min(magenta) > 0.02, f"frames read back from cam{stream} must be masked"
        assert shapes[0] == (144, 176, 3) and shapes[1] != shapes[0]
    finally:
        pipeline.close()
        runner.join(timeout=10)
        for camera in cameras:
            camera.stop()
    assert all(sink.process is None for sink in pipeline.sinks)  # the last output closed stopped the server


def test_a_camera_down_at_the_start_does_not_keep_the_others_from_being_masked(engine, tmp_path, caplog):
    """Three-camera sites restart their runs (a reboot, systemd): before, one camera down at that moment ended the
    run with an error, and the cameras that were up went unrecorded until it was back. Now it is opened in the
    background, said once; its output begins when it is up. All of them down is still an error at once."""
    need_shared()
    import logging

    up, down = (RtspServer(MEDIA / "one-by-one-person-detection.mp4") for _ in range(2))  # 139 s each
    down.kill()
    options = SourceOptions(open_timeout=2, read_timeout=5)
    try:
        with pytest.raises(SourceError, match=f"cannot open rtsp://127.0.0.1:{down.port}/live within 2 s"):
            Pipeline([down.url, down.url], engine, "blur", None, source_options=options)  # none up: said at once
        caplog.set_level(logging.WARNING)
        pipeline = Pipeline([up.url, down.url], engine, "blur", [str(tmp_path / "up.mkv"), str(tmp_path / "late.mkv")],
                            source_options=options)
        results, marks = run_with_timeline(pipeline, [(3.0, "started", down.start), (5.0, "end", None)])
    finally:
        up.kill()
        down.kill()
    first_late = min(r.written_ts for r in results if r.frame.stream == 1)
    assert any(r.frame.stream == 0 and r.written_ts < marks["started"] for r in results)  # masked meanwhile
    assert first_late > marks["started"] and sum(r.frame.stream == 1 for r in results) >= 10
    assert not any(r.frame.placeholder for r in results)  # nothing to hold up before its first frame
    said = [record.getMessage() for record in caplog.records]
    assert any(f"cannot open rtsp://127.0.0.1:{down.port}/live" in m and "while the other streams go on" in m
               for m in said), said
    assert any(f"rtsp://127.0.0.1:{down.port}/live is up" in m for m in said), said
    for name, stream in (("up.mkv", 0), ("late.mkv", 1)):
        assert len(read_frames(tmp_path / name)) == sum(r.frame.stream == stream for r in results)


def test_an_rtsp_output_with_viewer_credentials_is_served_only_to_that_viewer(engine):
    """`-o rtsp://viewer:secret@HOST:PORT/PATH` (before: the server tried to listen on "viewer:secret@host" and the
    error showed the password): a client with the credentials reads the masked stream, one without or with a wrong
    password is refused (401), a path on the same port without credentials stays open; the password in no message."""
    need_shared()
    import threading

    from realtime.outputs.rtsp import RtspSink
    from tests.common import MjpegServer, free_port

    camera = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=25)
    port = free_port()
    guarded = RtspSink(f"viewer:s%40cret@127.0.0.1:{port}/guarded", fps=25)  # the password "s@cret", URL-encoded
    shared = RtspSink(f"127.0.0.1:{port}/shared", fps=25)
    pipeline = Pipeline([camera.url, camera.url], engine, "fill", [guarded, shared], mode_options={"color": "255,0,255"})
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()

    def frames(url: str) -> int:
        try:
            with open_source(url, SourceOptions(open_timeout=5, read_timeout=5, reconnect=False)) as client:
                for count, _ in enumerate(client, 1):
                    if count >= 5:
                        return count
        except SourceError:
            return 0
        return 0

    try:
        deadline = time.monotonic() + 20
        while (guarded.process is None or not guarded.frames_written) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert frames(f"rtsp://viewer:s%40cret@127.0.0.1:{port}/guarded") == 5
        assert frames(f"rtsp://127.0.0.1:{port}/guarded") == 0
        assert frames(f"rtsp://viewer:wrong@127.0.0.1:{port}/guarded") == 0
        assert frames(f"rtsp://127.0.0.1:{port}/shared") == 5
    finally:
        pipeline.close()
        runner.join(timeout=10)
        camera.stop()
    assert guarded.uri == f"rtsp://***@127.0.0.1:{port}/guarded"
    assert "cret" not in str(pipeline.stats.info)


@pytest.mark.parametrize("location,shown,bind,viewer", [
    ("@:{port}/a", "rtsp://@:{port}/a", "0.0.0.0", None),
    ("v:s@@:{port}/b", "rtsp://***@@:{port}/b", "0.0.0.0", "djpz"),  # base64 of "v:s"; every interface
    ("v:s@127.0.0.1:{port}/c", "rtsp://***@127.0.0.1:{port}/c", "127.0.0.1", "djpz"),
    ("127.0.0.1:{port}/d", "rtsp://127.0.0.1:{port}/d", "127.0.0.1", None),
])
def test_rtsp_output_addresses_with_and_without_viewer_credentials(location, shown, bind, viewer):
    from realtime.outputs.rtsp import RtspSink
    from tests.common import free_port

    port = free_port()
    sink = RtspSink(location.format(port=port))
    try:
        assert (sink.uri, sink.server.host, sink.server.viewers[sink.path]) == (shown.format(port=port), bind, viewer)
    finally:
        sink.close()
