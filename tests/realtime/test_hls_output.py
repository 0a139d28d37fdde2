"""HLS output (``-o live.m3u8``): a playlist and 2 s H.264 segments, read back by FFmpeg and played by Chromium from a
web server on loopback, from a file and from a live source."""

from __future__ import annotations

import re
import threading
import time

import av
import cv2
import numpy as np

from realtime.cli import main
from realtime.outputs import open_sink
from tests.common import MEDIA, FolderServer, need_shared

CLIP = MEDIA / "one-by-one-person-detection.mp4"  # 768x432 at 10 fps


def _decoded(path):
    with av.open(str(path)) as container:
        return [(float(frame.time), frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]


def _played_in_chromium(url: str, at_s: float | None) -> dict:
    """What Chromium's own HLS player makes of the playlist at ``url``: its size, length and, at ``at_s`` (None: where
    it joined, once it has played a second from there), the frame shown, drawn to a canvas (``pixels``: RGB rows)."""
    from tests.realtime.test_browser_preview import chromium_page

    with chromium_page() as page:
        page.goto(url.rsplit("/", 1)[0] + "/")  # the folder's listing: a page of the server's own origin
        return page.evaluate("""([src, at]) => new Promise(done => {
            const v = document.createElement('video'); v.muted = true; document.body.appendChild(v);
            let tries = 0;  // a frame not yet decoded after the seek (a loaded machine) draws nothing: drawn again
            const grab = () => { if (v.readyState < 2 && ++tries < 100) { setTimeout(grab, 100); return; }
                const c = document.createElement('canvas'); c.width = 96; c.height = 54;
                const g = c.getContext('2d'); g.drawImage(v, 0, 0, 96, 54);
                const d = g.getImageData(0, 0, 96, 54).data, rgb = [];
                if (!d.some((value, i) => i % 4 === 3 && value > 0) && ++tries < 100) { setTimeout(grab, 100); return; }
                for (let i = 0; i < d.length; i += 4) rgb.push([d[i], d[i + 1], d[i + 2]]);
                done({width: v.videoWidth, duration: v.duration, time: v.currentTime, pixels: rgb}); };
            v.onerror = () => done({error: v.error && v.error.code});
            v.onloadeddata = () => {
                if (at === null) { const start = v.currentTime; v.play();
                    v.ontimeupdate = () => { if (v.currentTime > start + 1) { v.ontimeupdate = null; grab(); } }; }
                else { v.onseeked = grab; v.currentTime = at; } };
            v.src = src;
            setTimeout(() => done({timeout: v.readyState, time: v.currentTime}), 30000); })""", [url, at_s])


def test_an_hls_output_of_a_file_lists_every_frame_and_plays_in_chromium(model_cache, tmp_path):
    """`-o live.m3u8` beside `-o out.mp4`: 2 s segments, each from a key frame, every one listed and the list ended;
    FFmpeg reads back every frame at its time, as the MP4 holds it; Chromium plays it from a web server, the frame at
    3 s the MP4's (before: "cannot tell what output 'live.m3u8' is")."""
    need_shared()
    folder = tmp_path / "www"
    folder.mkdir()
    playlist = folder / "live.m3u8"
    assert main(["run", "-i", str(CLIP), "-o", str(tmp_path / "out.mp4"), "-o", str(playlist), "--max-frames", "60",
                 "--mode", "pixelate"]) == 0
    text = playlist.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert re.findall(r"^live-\d{6}\.ts$", text, re.M) == [f"live-{k:06d}.ts" for k in range(3)]
    for segment in sorted(folder.glob("*.ts")):  # each segment starts at a key frame: a player joins or seeks there
        with av.open(str(segment)) as container:
            assert next(container.demux(video=0)).is_keyframe
    hls, mp4 = _decoded(playlist), _decoded(tmp_path / "out.mp4")
    assert len(hls) == len(mp4) == 60
    for (at, image), (mp4_at, expected) in zip(hls, mp4, strict=True):
        assert abs((at - hls[0][0]) - (mp4_at - mp4[0][0])) < 0.002 and cv2.PSNR(image, expected) > 35
    server = FolderServer(folder)
    try:
        played = _played_in_chromium(server.url + "live.m3u8", 3.0)
    finally:
        server.stop()
    assert played.get("width") == 768 and abs(played["duration"] - 6.0) < 0.05, {**played, "pixels": None}
    shown = np.array(played["pixels"], np.float64).reshape(54, 96, 3)[..., ::-1]
    expected = cv2.resize(mp4[30][1], (96, 54), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert np.abs(shown - expected).mean() < 8


def test_a_live_hls_output_keeps_a_window_of_segments_and_deletes_the_rest(tmp_path):
    """From a live source the playlist lists the last 6 segments (12 s), each with its wall-clock time, and the
    segments before them are deleted from the disk: a 24/7 camera's stream does not fill it. The end is said."""
    need_shared()
    capture = cv2.VideoCapture(str(CLIP))
    frames = [capture.read()[1] for _ in range(10)]
    sink = open_sink(str(tmp_path / "cam.m3u8"))
    sink.live = True
    with sink:
        for index in range(300):  # 30 s of a 10 fps camera, timed by arrival
            sink.write(frames[index % 10], present_ts=1000.0 + index / 10)
            if index == 250:
                live = (tmp_path / "cam.m3u8").read_text()
    listed = re.findall(r"^cam-(\d{6})\.ts$", live, re.M)
    assert len(listed) == 6 and "#EXT-X-ENDLIST" not in live and "#EXT-X-PLAYLIST-TYPE" not in live
    assert live.count("#EXT-X-PROGRAM-DATE-TIME:") == 6
    assert f"#EXT-X-MEDIA-SEQUENCE:{int(listed[0])}" in live
    ended = (tmp_path / "cam.m3u8").read_text()
    assert ended.rstrip().endswith("#EXT-X-ENDLIST")
    on_disk = sorted(path.name for path in tmp_path.glob("*.ts"))
    assert len(on_disk) <= 8 and on_disk[-1] == "cam-000014.ts", on_disk  # 15 segments made, the last few kept


def test_a_live_hls_output_is_watched_in_chromium_as_the_run_goes(model_cache, tmp_path):
    """A camera masked to HLS, a web server serving the folder: Chromium joins the live stream while the run goes on
    and plays it, the masked person shown."""
    need_shared()
    from realtime.pipeline import Pipeline
    from tests.common import MjpegServer

    camera = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=15)
    pipeline = Pipeline(camera.url, "mediapipe-selfie", "fill", str(tmp_path / "live.m3u8"),
                        mode_options={"color": "255,0,255"})
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    server = FolderServer(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(tmp_path.glob("live-*.ts"))) < 3:
            time.sleep(0.2)
        played = _played_in_chromium(server.url + "live.m3u8", None)
    finally:
        pipeline.close()
        runner.join(timeout=10)
        server.stop()
        camera.stop()
    assert played.get("width") == 176, {**played, "pixels": None}  # the camera's JPEGs, 176x144
    shown = np.array(played["pixels"], np.float64).reshape(54, 96, 3)
    magenta = np.all(np.abs(shown - (255, 0, 255)) < 60, axis=2).mean()
    assert 0.05 < magenta < 0.9, magenta  # the person, filled


def test_a_live_hls_output_is_read_by_another_run_as_a_live_hls_source(model_cache, tmp_path):
    """Two boxes chained: one masks a camera to HLS, a web server serves the folder, a second run reads that playlist
    as a live HLS source, every frame in order, and ends when the first run does (``#EXT-X-ENDLIST``)."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "www"
    folder.mkdir()
    writer = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", "-i", "synthetic:320x240@10?live=1",
                               "-o", str(folder / "live.m3u8"), "--max-frames", "100"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = FolderServer(folder)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (folder / "live.m3u8").exists():
            time.sleep(0.2)
        meta = tmp_path / "second.jsonl"
        assert main(["run", "-i", server.url + "live.m3u8", "-o", "null", "--metadata", str(meta)]) == 0
    finally:
        writer.wait(timeout=60)
        server.stop()
    assert writer.returncode == 0, writer.stderr.read()
    indexes = [json.loads(line)["index"] for line in meta.read_text().splitlines()]
    assert indexes == list(range(len(indexes))) and len(indexes) >= 80, indexes  # joined at the window's start


def test_an_hls_output_with_the_sound_plays_it_in_chromium(model_cache, tmp_path):
    """--audio copy into an HLS output (the source's AAC in its segments): Chromium decodes both the video and the
    sound as it plays."""
    need_shared()
    from tests.realtime.test_browser_preview import chromium_page

    folder = tmp_path / "www"
    folder.mkdir()
    assert main(["run", "-i", str(MEDIA / "car-detection.mp4"), "-o", str(folder / "live.m3u8"), "--max-frames", "50",
                 "--audio", "copy"]) == 0
    server = FolderServer(folder)
    try:
        with chromium_page() as page:
            page.goto(server.url)
            played = page.evaluate("""(src) => new Promise(done => {
                const v = document.createElement('video'); v.muted = true; document.body.appendChild(v); v.src = src;
                v.onloadeddata = () => { v.play(); v.ontimeupdate = () => { if (v.currentTime > 1.5) done({
                    audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount, d: v.duration}); }; };
                v.onerror = () => done({error: v.error && v.error.code});
                setTimeout(() => done({timeout: v.readyState}), 30000); })""", server.url + "live.m3u8")
    finally:
        server.stop()
    assert played.get("audio", 0) > 10000 and played["video"] > 10000 and abs(played["d"] - 4.0) < 0.1, played
