"""The browser preview, checked in a real headless Chromium: the page loads, the image updates, and a
screenshot shows a masked frame."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import time

import av
import cv2
import numpy as np
import pytest

import engines
from realtime.outputs.http_preview import HttpPreviewSink
from realtime.pipeline import Pipeline
from tests.common import MEDIA, MjpegServer, WebFileServer, need_shared

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="needs Debian's chromium (apt-get install chromium)")
MAGENTA_BGR = (255, 0, 255)


@contextlib.contextmanager
def filling_camera(output):
    """A camera (the clip at 15 fps, over HTTP) filled magenta where people are, into ``output``, by a pipeline
    running on its own thread; both stopped after the block."""
    camera = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=15)
    pipeline = Pipeline(camera.url, engines.load("mediapipe-selfie"), "fill", output, mode_options={"color": "255,0,255"})
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    try:
        yield pipeline
    finally:
        pipeline.close()
        runner.join(timeout=10)
        camera.stop()


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 720):
    """A page of Debian's Chromium, headless, in a browser that closes with the block."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def test_preview_in_headless_chromium(model_cache):
    need_shared()
    sink = HttpPreviewSink("127.0.0.1", 0)
    assert sink.url.startswith("http://127.0.0.1:")
    try:
        with filling_camera(sink), chromium_page(640, 480) as page:
            page.goto(sink.url)
            page.wait_for_function("document.getElementById('stream').naturalWidth === 176", timeout=20000)
            first_count = int(page.inner_text("#frames"))
            first = page.locator("#stream").screenshot()
            time.sleep(1.5)
            page.wait_for_function(f"Number(document.getElementById('frames').textContent) > {first_count}", timeout=10000)
            second = page.locator("#stream").screenshot()
            assert float(page.inner_text("#fps")) > 1.0
            assert page.inner_text("#latency") != "-"
            page.screenshot(path="/tmp/realtime-mask-preview.png")
    finally:
        sink.close()  # a sink handed in as an object belongs to the caller
    shots = [cv2.imdecode(np.frombuffer(s, np.uint8), cv2.IMREAD_COLOR) for s in (first, second)]
    assert not np.array_equal(shots[0], shots[1]), "the image must update"
    for shot in shots:
        magenta = np.all(np.abs(shot.astype(int) - MAGENTA_BGR) < 40, axis=2)
        assert magenta.mean() > 0.05, "the screenshot must show the masked (filled) person"
    assert sink._closed


def test_a_camera_recorded_and_watched_in_chromium_at_once(model_cache, tmp_path):
    """One camera, two outputs (``-o rec.mp4 -o http://...``; before: "1 sources need 1 outputs, got 2", so a second
    run, a second camera connection and a second inference): the browser shows the masked stream while the recording
    is written, and the recording holds every frame the browser was offered."""
    need_shared()
    preview = HttpPreviewSink("127.0.0.1", 0)
    record = tmp_path / "rec.mp4"
    try:
        with filling_camera([str(record), preview]) as pipeline, chromium_page(640, 480) as page:
            page.goto(preview.url)
            page.wait_for_function("Number(document.getElementById('frames').textContent) > 20", timeout=20000)
            shot = cv2.imdecode(np.frombuffer(page.locator("#stream").screenshot(), np.uint8), cv2.IMREAD_COLOR)
    finally:
        preview.close()
    assert np.all(np.abs(shot.astype(int) - MAGENTA_BGR) < 40, axis=2).mean() > 0.05, "the browser shows it masked"
    assert pipeline.sink.uri == f"file://{record} + {preview.uri}"
    capture, recorded = cv2.VideoCapture(str(record)), []
    while (read := capture.read())[0]:
        recorded.append(read[1])
    assert len(recorded) == pipeline.sink.frames_written == preview.frames_written > 20
    magenta = [np.all(np.abs(image.astype(int) - MAGENTA_BGR) < 40, axis=2).mean() for image in recorded]
    assert min(magenta) > 0.05, "every recorded frame is masked too"


def test_several_streams_previewed_on_one_port_side_by_side(model_cache):
    """-o http://127.0.0.1:PORT/cam{stream}/: two cameras on one server, each page at its path; the server's root shows
    both streams side by side in Chromium, each masked; a second preview on a taken path is a one-line error."""
    need_shared()
    from engines.errors import OutputError
    from realtime.outputs import open_sink
    from tests.common import free_port

    cameras = [MjpegServer(MEDIA / "carphone_pristine.mp4", fps=15),
               MjpegServer(MEDIA / "head-pose-face-detection-female-and-male.gif", fps=15)]
    port = free_port()
    pipeline = Pipeline([camera.url for camera in cameras], engines.load("mediapipe-selfie"), "fill",
                        f"http://127.0.0.1:{port}/cam{{stream}}/", mode_options={"color": "255,0,255"})
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    try:
        assert pipeline.sinks[0].server is pipeline.sinks[1].server
        assert [sink.url for sink in pipeline.sinks] == [f"http://127.0.0.1:{port}/cam0/", f"http://127.0.0.1:{port}/cam1/"]
        with pytest.raises(OutputError, match="two previews at"):
            open_sink(f"http://127.0.0.1:{port}/cam0/")
        with chromium_page(1280, 600) as page:
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("[...document.images].length === 2 && [...document.images].every(i => i.naturalWidth)",
                                   timeout=20000)
            widths = page.evaluate("[...document.images].map(i => i.naturalWidth)")
            shots = [page.locator("img").nth(k).screenshot() for k in range(2)]
            page.goto(f"http://127.0.0.1:{port}/cam1")  # redirected to /cam1/, the stream's own page
            page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=20000)
            assert page.url.endswith("/cam1/")
    finally:
        pipeline.close()
        runner.join(timeout=10)
        for camera in cameras:
            camera.stop()
    assert widths[0] == 176 and widths[1] != 176
    for shot in shots:
        image = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
        assert np.all(np.abs(image.astype(int) - MAGENTA_BGR) < 40, axis=2).mean() > 0.02, "each stream is masked"


def test_an_mp4_output_plays_and_seeks_in_chromium(model_cache, tmp_path):
    """The .mp4 (H.264 in one-second fragments) as a browser gets it from a web server with range requests: it
    loads, states its length, seeks, and the frame there shows the masked person."""
    need_shared()
    from realtime.cli import main

    out = tmp_path / "out.mp4"
    assert main(["run", "-i", str(MEDIA / "carphone_pristine.mp4"), "-o", str(out), "--max-frames", "60",
                 "--mode", "fill", "--color", "255,0,255"]) == 0
    seen = _seen_in_chromium(out, 1.0, """
        const d = g.getImageData(0, 0, c.width, c.height).data; let magenta = 0;
        for (let i = 0; i < d.length; i += 4) magenta += d[i] > 200 && d[i + 1] < 60 && d[i + 2] > 200;
        return {duration: v.duration, time: v.currentTime, size: [v.videoWidth, v.videoHeight],
                magenta: magenta / (d.length / 4)};""")
    assert "error" not in seen and "timeout" not in seen, seen
    # shown as wide as the clip is: its 176 pixels are 128/117 wide (QCIF at 4:3), which the MP4 states as the clip does
    assert abs(seen["duration"] - 60 / 29.97) < 0.1 and seen["time"] == 1.0 and seen["size"] == [193, 144]
    assert 0.05 < seen["magenta"] < 0.8, seen  # the person, filled


def _seen_in_chromium(path, at_s: float, measure: str):
    """What the JavaScript ``measure`` returns of the frame Chromium shows at ``at_s`` of the video at ``path`` (served
    by a web server, as a browser gets it: range requests), drawn on a canvas: ``c`` the canvas, ``g`` its context,
    ``v`` the video; ``{error}`` or ``{timeout}`` when it does not play."""
    server = WebFileServer(path)
    try:
        with chromium_page() as page:
            page.goto(server.url.replace("/clip", "/"))  # the server's origin: the video is same-origin, readable
            page.set_content(f'<video id="v" src="{server.url}" muted></video>')
            return page.evaluate("""() => new Promise(done => {
                const v = document.getElementById('v');
                const seek = () => { v.onseeked = () => {
                    const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
                    const g = c.getContext('2d'); g.drawImage(v, 0, 0);
                    done((() => {""" + measure + """})()); }; v.currentTime = """ + str(at_s) + """; };
                v.onerror = () => done({error: v.error && v.error.code});
                if (v.readyState >= 2) seek(); else v.onloadeddata = seek;
                setTimeout(() => done({timeout: v.readyState}), 20000); })""")
    finally:
        server.stop()


def _chart_in_chromium(path, at_s: float = 0.5) -> np.ndarray:
    """The colour chart of a :func:`~tests.common.color_tagged_copy` as Chromium shows the video at ``path`` at
    ``at_s`` (RGB, each patch's mean of 32x32 pixels at its centre)."""
    patches = _seen_in_chromium(path, at_s, """
        const patches = [];
        for (let k = 0; k < 6; k++) {
            const d = g.getImageData(Math.floor((k + 0.5) * c.width / 6) - 16, Math.floor(c.height / 12) - 16, 32,
                                     32).data;
            const mean = [0, 0, 0];
            for (let i = 0; i < d.length; i += 4) for (let j = 0; j < 3; j++) mean[j] += d[i + j] / 1024;
            patches.push(mean); }
        return patches;""")
    assert isinstance(patches, list), f"Chromium did not show {path}: {patches}"
    return np.array(patches)


@pytest.mark.parametrize("kind", ["bt709-clip", "png-folder", "rtsp-camera", "web-file", "pipe", "live-pipe"])
def test_an_outputs_colours_play_in_chromium_as_its_sources_do(model_cache, tmp_path, kind):
    """An HD clip that states BT.709 (as cameras, phones and encoders do), the same clip from an RTSP camera, on a web
    server and piped in (``ffmpeg ... -c copy -f mpegts - |``), and a folder of PNGs (as a webcam's, a GIF's and the
    test pattern's, frames whose RGB is as shown), a colour chart in their scene: the output, written by BT.601, was
    untagged, so Chromium showed it by BT.709: the green patch 25-27 levels darker, the red one yellower (the test,
    run before the change; the web file and the pipes until 2026-12-01). Now the output says its matrix and plays in
    Chromium as the clip does, and as the images are."""
    need_shared()
    from realtime.cli import main
    from tests.common import CHART_BGR, color_tagged_copy

    clip = color_tagged_copy(MEDIA / "car-detection.mp4", tmp_path / "hd.mp4", 20, (1280, 720), (1, 1, 1), "ITU709",
                             chart=True)
    source, out = clip, tmp_path / "out.mp4"
    if kind == "png-folder":
        source = tmp_path / "frames"
        source.mkdir()
        capture = cv2.VideoCapture(str(clip))
        for index in range(20):
            frame = capture.read()[1]
            for k, color in enumerate(CHART_BGR):  # the chart as drawn, not as H.264 kept it
                frame[:120, k * 1280 // 6:(k + 1) * 1280 // 6] = color
            cv2.imwrite(str(source / f"{index:03d}.png"), frame)
    camera = None
    if kind == "rtsp-camera":
        from tests.common import RtspServer

        if (why := RtspServer.available()) is not None:
            pytest.skip(why)
        camera = RtspServer(clip)
    if kind == "web-file":
        camera = WebFileServer(clip)
    try:
        if kind.endswith("pipe"):
            with av.open(str(clip)) as tagged, av.open(str(tmp_path / "hd.ts"), "w", format="mpegts") as ts:
                video = ts.add_stream_from_template(tagged.streams.video[0])
                for packet in tagged.demux(tagged.streams.video[0]):
                    if packet.dts is not None:
                        packet.stream = video
                        ts.mux(packet)
            with open(tmp_path / "hd.ts", "rb") as piped:
                run = subprocess.run([sys.executable, "-m", "realtime.cli", "run", "-i", "-", "-o", str(out),
                                      *(["--live"] if kind == "live-pipe" else [])], stdin=piped, capture_output=True,
                                     text=True, timeout=300)
            assert run.returncode == 0, run.stderr
        else:
            assert main(["run", "-i", camera.url if camera else str(source), "-o", str(out), "--max-frames", "20"]) == 0
    finally:
        if isinstance(camera, WebFileServer):
            camera.stop()
        elif camera is not None:
            camera.kill()
    chart, clip_shown = np.array(CHART_BGR)[:, ::-1], _chart_in_chromium(clip)
    assert np.abs(clip_shown - chart).max() <= 10  # Chromium shows the chart
    expected = chart if kind == "png-folder" else clip_shown
    shown = _chart_in_chromium(out, 0.0 if kind == "live-pipe" else 0.5)  # a live pipe's: a frame or more
    assert np.abs(shown - expected).max() <= 6, (shown, expected)
