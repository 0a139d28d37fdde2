"""The browser preview, checked in a real headless Chromium: the page loads, the image updates, and a
screenshot shows a masked frame."""

from __future__ import annotations

import shutil
import threading
import time

import cv2
import numpy as np
import pytest

import engines
from realtime.outputs.http_preview import HttpPreviewSink
from realtime.pipeline import Pipeline
from tests.common import MEDIA, MjpegServer, need_shared

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="needs Debian's chromium (apt-get install chromium)")
MAGENTA_BGR = (255, 0, 255)


def test_preview_in_headless_chromium(model_cache):
    need_shared()
    camera = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=15)
    sink = HttpPreviewSink("127.0.0.1", 0)
    assert sink.url.startswith("http://127.0.0.1:")
    pipeline = Pipeline(camera.url, engines.load("mediapipe-selfie"), "fill", sink,
                        mode_options={"color": "255,0,255"})
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 640, "height": 480})
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
            browser.close()
    finally:
        pipeline.close()
        runner.join(timeout=10)
        sink.close()  # a sink handed in as an object belongs to the caller
        camera.stop()
    shots = [cv2.imdecode(np.frombuffer(s, np.uint8), cv2.IMREAD_COLOR) for s in (first, second)]
    assert not np.array_equal(shots[0], shots[1]), "the image must update"
    for shot in shots:
        magenta = np.all(np.abs(shot.astype(int) - MAGENTA_BGR) < 40, axis=2)
        assert magenta.mean() > 0.05, "the screenshot must show the masked (filled) person"
    assert sink._closed
