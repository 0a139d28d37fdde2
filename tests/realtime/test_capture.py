"""Source strings, the registry and the file/synthetic/sample sources."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from engines.errors import ConfigError, SourceError
from realtime.capture import SourceNotFoundError, normalise_uri, open_source, redact, source_files
from realtime.capture.camera import CameraMode
from realtime.frame import Frame
from realtime.video_decoding import ColorTags, color_tags
from tests.common import MEDIA, HlsServer, MjpegServer, TsStreamSender, WebFileServer, hls_segments, need_shared


@pytest.mark.parametrize("text,uri", [
    ("clip.mp4", "file://clip.mp4"), ("anim.gif", "file://anim.gif"), ("frames/*.png", "images://frames/*.png"),
    ("still.jpg", "images://still.jpg"), ("0", "camera://0"), ("/dev/video2", "camera:///dev/video2"),
    ("rtsp://h/x", "rtsp://h/x"), ("https://h/x.m3u8", "https://h/x.m3u8"), ("synthetic:", "synthetic://"),
    ("synthetic:1280x720@60", "synthetic://1280x720@60"), ("sample:carphone", "sample://carphone"),
    ("0?size=1280x720&fps=30", "camera://0?size=1280x720&fps=30"), ("/dev/video2?format=mjpg",
                                                                     "camera:///dev/video2?format=mjpg"),
])
def test_normalise(text, uri):
    assert normalise_uri(text) == uri


@pytest.mark.parametrize("query,mode", [
    ("size=1280x720&fps=30&format=mjpg", CameraMode((1280, 720), 30.0, "MJPG")), ("fps=59.94", CameraMode(fps=59.94)),
    ("format=YUYV", CameraMode(fourcc="YUYV")), ("", None)])
def test_a_camera_mode_is_read_from_the_source_string(query, mode):
    assert CameraMode.parse(query) == mode


@pytest.mark.parametrize("query,fragment", [("size=1280", "WIDTHxHEIGHT"), ("size=9x9", "16..8192"),
                                            ("fps=0", "fps must be a number in (0, 1000]"), ("fps=fast", "got 'fast'"),
                                            ("format=rgb", "format must be one of mjpg"), ("width=640", "'width'")])
def test_a_bad_camera_mode_is_one_line_that_says_the_form(query, fragment):
    from tests.realtime.test_cli_models import assert_one_line_error, run_cli

    assert_one_line_error(run_cli("run", "-i", f"0?{query}", "-o", "null"), fragment)


def test_a_camera_mode_is_asked_for_and_read_back(caplog):
    """Set on a real OpenCV capture and read back: one that gives another size (here a file, whose size is its own;
    a camera without that mode) is said once, with what it gives; one that gives it, nothing. A camera index that is
    not here still fails as before, the mode parsed first."""
    need_shared()
    capture = cv2.VideoCapture(str(MEDIA / "carphone_pristine.mp4"))
    try:
        with caplog.at_level("WARNING"):
            CameraMode.parse("size=1280x720").apply(capture, "camera://0")
            CameraMode.parse("size=176x144").apply(capture, "camera://0")
    finally:
        capture.release()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "camera://0 gives 176x144, not the 1280x720 asked for" in warnings[0]
    with pytest.raises(SourceError, match="no camera at /dev/video9"):
        open_source("9?size=1280x720&fps=30&format=mjpg")


def test_ambiguous_camera_index_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "1").write_bytes(b"")
    with pytest.raises(SourceError, match="both a camera index and a file"):
        normalise_uri("1")


def test_redact():
    assert redact("rtsp://u:p@h:554/a?b=1") == "rtsp://***@h:554/a?b=1"
    assert redact("rtsp://h/a") == "rtsp://h/a"


def test_video_file_frames_carry_index_and_timestamps():
    need_shared()
    with open_source(str(MEDIA / "carphone_pristine.mp4")) as source:
        frames = list(source)
    assert source.frame_count == len(frames) == 120 and abs(source.fps - 29.97) < 0.01
    assert [f.index for f in frames] == list(range(120))
    assert frames[30].source_ts == pytest.approx(30 / 29.97, abs=0.05)
    assert all(a.capture_ts <= b.capture_ts for a, b in itertools.pairwise(frames))


def test_an_av1_file_opencv_cannot_decode_is_decoded_with_pyav_every_frame_in_time(model_cache, tmp_path):
    """OpenCV's wheel opens an AV1 file (a YouTube download, an OBS or phone recording) but decodes no frame of it;
    before, the run ended with "has no decodable frames". Now PyAV (dav1d) decodes it: the same frames at the
    same times as the H.264 clip it was made from, masked by the run, and as a background video."""
    need_shared()
    from realtime.compositor.background import Background
    from tests.common import av1_copy
    from tests.realtime.test_cli_models import assert_one_line_error, run_cli

    clip = MEDIA / "carphone_pristine.mp4"
    av1 = av1_copy(clip, tmp_path / "av1.mp4", 30)
    assert not cv2.VideoCapture(str(av1)).read()[0]  # what OpenCV alone does with it
    with open_source(str(clip)) as source:
        original = list(itertools.islice(source, 30))
    with open_source(str(av1)) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(30))
    assert [f.source_ts for f in frames] == pytest.approx([f.source_ts for f in original], abs=0.001)
    assert max(np.abs(a.bgr.astype(int) - b.bgr).mean() for a, b in zip(frames, original, strict=True)) < 3
    background = Background(av1)
    assert background.is_video and background.frame_bgr(at=0.0) is not None  # the stream's clock starts at 0
    assert np.abs(background.frame_bgr(at=original[10].source_ts).astype(int) - original[10].bgr).mean() < 3
    result = run_cli("run", "-i", str(av1), "-o", str(tmp_path / "out.mkv"), "--mode", "replace", "--background", str(av1))
    assert result.returncode == 0, result.stderr
    assert cv2.VideoCapture(str(tmp_path / "out.mkv")).get(cv2.CAP_PROP_FRAME_COUNT) == 30
    # on a web server too (before 2026-12-01: an error, "download it"), a dropped connection resumed as for OpenCV
    for cut in [(), (4,)]:
        server = WebFileServer(av1, cut=cut)
        try:
            with open_source(server.url.replace("://", "://viewer:secret@")) as source:
                web = list(source)
        finally:
            server.stop()
        assert [f.source_ts for f in web] == [f.source_ts for f in frames] and source.uri.startswith("http://***@")
        assert all(np.array_equal(a.bgr, b.bgr) for a, b in zip(web, frames, strict=True))
        assert len(server.ranges) > 4 if cut else True, server.ranges  # the cut response resumed with a range
    undecodable = tmp_path / "undecodable.mp4"  # its frames' bytes zeroed: neither decodes a frame
    data = bytearray(av1.read_bytes())
    mdat = data.find(b"mdat")
    end = mdat - 4 + int.from_bytes(data[mdat - 4:mdat], "big")
    data[mdat + 4:end] = bytes(end - mdat - 4)
    undecodable.write_bytes(data)
    server = WebFileServer(undecodable)
    try:
        result = run_cli("run", "-i", server.url.replace("://", "://viewer:secret@"), "-o", str(tmp_path / "web.mkv"))
    finally:
        server.stop()
    assert_one_line_error(result, "http://***@127.0.0.1", "does not decode its av1 video; convert it to H.264")


def test_the_pyav_reader_turns_frames_upright_as_opencv_does(tmp_path):
    """A phone's upright clip is stored sideways with a display matrix: PyAV's frames are turned as OpenCV turns
    them (the masks are found on upright people), pixel for pixel, at the same times."""
    need_shared()
    from realtime.video_decoding import PyAVCapture
    from tests.common import rotated_copy

    rotated = rotated_copy(MEDIA / "carphone_pristine.mp4", tmp_path / "upright.mp4")
    opencv, pyav = cv2.VideoCapture(str(rotated)), PyAVCapture(rotated)
    for _ in range(20):
        (ok, expected), (ok_pyav, frame) = opencv.read(), pyav.read()
        assert ok and ok_pyav and frame.shape == expected.shape == (176, 144, 3)
        assert np.array_equal(frame, expected)
        assert pyav.get(cv2.CAP_PROP_POS_MSEC) == pytest.approx(opencv.get(cv2.CAP_PROP_POS_MSEC), abs=0.01)
    pyav.release()
    assert not pyav.read()[0]


def test_a_local_file_cut_short_is_masked_to_its_end_and_said_so(model_cache, tmp_path):
    """A copy cut in half (its index, at the start, states 139.4 s): every frame it holds is masked, exit 0, and one
    warning says where it ends (before, nothing said the input was short). Whole files, a GIF and a clip of varying
    frame rate, whose frame count FFmpeg only estimates, are not warned about."""
    need_shared()
    from tests.common import numbered_video
    from tests.realtime.test_cli_models import run_cli

    data = (MEDIA / "one-by-one-person-detection.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    result = run_cli("masks", str(tmp_path / "cut.mp4"), "-o", str(tmp_path / "cut.npz"))
    assert result.returncode == 0, result.stderr
    masks = np.load(tmp_path / "cut.npz")["masks"]
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert 600 < len(masks) < 800 and len(warnings) == 1, result.stderr
    assert f"ends after {len(masks)} frames" in warnings[0] and "of the 139.4 s its container states" in warnings[0]
    varying = numbered_video(tmp_path / "varying.mkv", [0.0, 0.1, 0.4, 0.5])  # FFmpeg estimates 16 frames
    for whole in (MEDIA / "carphone_pristine.mp4", MEDIA / "head-pose-face-detection-female-and-male.gif", varying):
        result = run_cli("masks", str(whole), "-o", str(tmp_path / "whole.npz"))
        assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr


def test_image_folder_and_glob(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 9, 3), i, np.uint8))
    with open_source(str(tmp_path)) as source:
        assert [int(f.bgr[0, 0, 0]) for f in source] == [0, 1, 2]
    with open_source(str(tmp_path / "[12].png")) as source:
        assert source.frame_count == 2
    with pytest.raises(SourceNotFoundError, match="no images"):
        open_source(str(tmp_path / "*.jpg"))


def test_synthetic_is_deterministic_and_sized():
    with open_source("synthetic:160x90@20?frames=3") as a, open_source("synthetic:160x90@20?frames=3") as b:
        fa, fb = list(a), list(b)
    assert len(fa) == 3 and fa[0].resolution_wh == (160, 90)
    assert all(np.array_equal(x.bgr, y.bgr) for x, y in zip(fa, fb, strict=True))
    assert not np.array_equal(fa[0].bgr, fa[2].bgr), "the pattern moves"
    with pytest.raises(ConfigError):
        open_source("synthetic:160x90@20?color=red")



@pytest.mark.parametrize("index", [0, 7, 333, 100_003])
def test_synthetic_background_is_the_documented_ramp(index):
    """The background is (x + y + 40 t) mod 256 in blue and its inverse in red, made from a ramp cached per size."""
    from realtime.capture.synthetic import render

    frame = render(index, 203, 117, 30.0)
    ys, xs = np.mgrid[0:117, 0:203].astype(np.float64)
    expected = ((xs + ys + 40.0 * index / 30.0) % 256).astype(np.uint8)
    background = frame[..., 0].astype(int) + frame[..., 2] == 255  # not under the people drawn over it
    assert background.mean() > 0.5
    np.testing.assert_array_equal(frame[..., 0][background], expected[background])
    assert (frame[..., 1][background] == 90).all()


def test_sample_source_is_the_real_clip(model_cache):
    need_shared()
    with open_source("sample:carphone") as sample, open_source(str(MEDIA / "carphone_pristine.mp4")) as clip:
        assert np.array_equal(next(iter(sample)).bgr, next(iter(clip)).bgr)
    with pytest.raises(SourceError, match="unknown sample"):
        open_source("sample:nothing")


def test_frame_validation():
    with pytest.raises(ValueError, match=r"uint8 HxWx3"):
        Frame(0, np.zeros((4, 4), np.uint8), 0.0, 0.0)


def test_http_mjpeg_camera_is_read_live_and_reconnects(caplog):
    """A camera that goes away and comes back: read on, its clock continuous, and both said on stderr with the local
    time (before: silent, the drop only counted — a 24/7 run's log did not say when a camera was lost)."""
    need_shared()
    import logging
    import re
    import time

    from realtime.capture import SourceOptions

    caplog.set_level(logging.WARNING)
    server = MjpegServer(MEDIA / "carphone_pristine.mp4")
    source = open_source(server.url, SourceOptions(open_timeout=3, read_timeout=5))
    try:
        assert source.live and source.uri == server.url
        frames = source.__iter__()
        first = [next(frames) for _ in range(30)]
        assert first[0].resolution_wh == (176, 144)
        indices = [f.index for f in first]
        assert indices == sorted(set(indices))
        # the stream's position (FFmpeg's), from its first frame on (before: that one had the monotonic clock's time)
        assert all(b.source_ts > a.source_ts for a, b in itertools.pairwise(first)) and first[0].source_ts < 1.0
        port = server.port
        server.stop()  # the camera goes away...
        time.sleep(1.0)
        server = MjpegServer(MEDIA / "carphone_pristine.mp4", port=port)  # ...and comes back
        later = [next(frames) for _ in range(10)]
        assert later[0].index > first[-1].index
        # the new connection's position (from 0 again) goes on from the last frame's, by the time the camera was away
        stamps = [f.source_ts for f in first + later]
        assert all(b > a for a, b in itertools.pairwise(stamps)) and later[0].source_ts > first[-1].source_ts + 0.9
        assert source.stats.disconnects >= 1 and source.stats.reconnects >= 1
        said = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert len(said) == 2, said  # a second drop within the minute would be info (-v): a flapping camera
        dropped = re.fullmatch(re.escape(server.url) + r" dropped at (\d\d:\d\d:\d\d) \(drop 1 of the run\); reconnecting",
                               said[0])
        off = time.mktime(time.strptime(time.strftime("%Y-%m-%d ") + dropped.group(1), "%Y-%m-%d %H:%M:%S")) - time.time()
        assert dropped and abs((off + 43200) % 86400 - 43200) < 30  # the local time of day (around midnight too)
        assert re.fullmatch(re.escape(server.url) + r" is back at \d\d:\d\d:\d\d, \d+ s after it dropped", said[1])
    finally:
        source.close()
        server.stop()
    with pytest.raises(SourceError, match="cannot open"):
        open_source(f"http://127.0.0.1:{port}/missing", SourceOptions(open_timeout=2))


@pytest.mark.parametrize("cut", [(), (3,)], ids=["whole", "connection-dropped-mid-file"])
def test_a_file_on_a_web_server_is_read_as_a_file_every_frame_in_order(model_cache, tmp_path, cut):
    """http(s):// to a clip on a web server: every frame, as from the local file (read live, the pipeline would drop
    what it had no time for: a masked recording missing most of its frames). A connection dropped half way is
    resumed with a range request."""
    need_shared()
    from realtime.cli import main

    server = WebFileServer(MEDIA / "carphone_pristine.mp4")
    with open_source(server.url) as source:
        assert not source.live and source.frame_count == 120 and source_files(source) == []
    server.stop()
    server = WebFileServer(MEDIA / "carphone_pristine.mp4", cut=cut)  # response 3: the frames (1, 2: the index)
    try:
        assert main(["run", "-i", server.url, "-o", str(tmp_path / "web.mp4"), "--metadata", str(tmp_path / "web.jsonl"),
                     "--mode", "pixelate", "--save-masks", str(tmp_path / "web.npz")]) == 0
    finally:
        server.stop()
    assert ("bytes=294426-" in server.ranges) == bool(cut)  # resumed where the cut left it
    assert main(["run", "-i", str(MEDIA / "carphone_pristine.mp4"), "-o", str(tmp_path / "local.mp4"),
                 "--mode", "pixelate", "--save-masks", str(tmp_path / "local.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "web.npz")["masks"], np.load(tmp_path / "local.npz")["masks"])
    assert len((tmp_path / "web.jsonl").read_text().splitlines()) == 120
    web, local = cv2.VideoCapture(str(tmp_path / "web.mp4")), cv2.VideoCapture(str(tmp_path / "local.mp4"))
    web_frames, local_frames = [web.read()[1] for _ in range(120)], [local.read()[1] for _ in range(120)]
    for index, frame in enumerate(web_frames):
        # the masks above are equal; the written frames are compared as images, as two runs' H.264 frames are not
        # always bit-exact in a long test process (cause not found; see the closing note of 2026-11-30): each is
        # nearer the local run's frame of its index than that frame's neighbours (a frame missing, doubled or out of
        # order is not; the masks, compared exactly above, say that already). Nearer, not by a margin: a frame that
        # hardly moved from its neighbour came only 4.98 dB nearer its own in a CI simulation (2026-11-30)
        same = cv2.PSNR(frame, local_frames[index])
        neighbours = [cv2.PSNR(frame, local_frames[k]) for k in (index - 1, index + 1) if 0 <= k < 120]
        assert same > 38 and same > max(neighbours), f"frame {index}: {same:.1f} dB, neighbours {neighbours}"
    assert not web.read()[0]


def test_a_web_file_whose_server_goes_away_ends_with_an_error_and_every_frame_so_far(model_cache, tmp_path, capsys):
    need_shared()
    from realtime.cli import main

    server = WebFileServer(MEDIA / "carphone_pristine.mp4", cut=(3,), gone_after=4)  # cut off, then 503
    try:
        code = main(["run", "-i", server.url, "-o", str(tmp_path / "o.mp4"), "--metadata", str(tmp_path / "m.jsonl")])
    finally:
        server.stop()
    error = capsys.readouterr().err
    assert code == 2 and "ended at frame 57 of the 120 it states" in error and "Traceback" not in error
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 57
    capture = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert sum(1 for _ in iter(lambda: capture.read()[0], False)) == 57


@pytest.fixture(scope="module")
def hls_event(tmp_path_factory):
    """60 frames of the surveillance clip (10 fps) as HLS segments of 10 frames (1 s)."""
    need_shared()
    folder = tmp_path_factory.mktemp("hls")
    return folder, hls_segments(MEDIA / "one-by-one-person-detection.mp4", folder, frames=60, segment_frames=10)


@pytest.mark.parametrize("path", ["live.m3u8", "live?token=1"], ids=["m3u8", "no-suffix"])
def test_a_live_hls_event_is_masked_every_frame_in_order_and_the_run_ends_with_it(model_cache, tmp_path, hls_event,
                                                                                   path):
    """An HLS server hands out whole segments at once: a camera's newest-frame rule dropped most of each (a 10 fps
    stream came out at 4 fps). Every frame is masked, in order, with the masks the finished event gets when read as a
    file; when the playlist ends so does the run (before: it reconnected and replayed the event, until Ctrl-C). A
    playlist's URL without ``.m3u8`` (a CDN's) is known by its type: it was read as a camera, which did all that."""
    from realtime.cli import main

    server = HlsServer(*hls_event, segment_s=1.0)
    live, vod = tmp_path / "live", tmp_path / "vod"
    try:
        assert main(["run", "-i", f"{server.url}/{path}", "-o", f"{live}.mp4", "--metadata", f"{live}.jsonl",
                     "--save-masks", f"{live}.npz", "--max-frames", "100"]) == 0  # the limit: a guard against a replay
        assert main(["run", "-i", f"{server.url}/vod.m3u8", "-o", "null", "--save-masks", f"{vod}.npz"]) == 0  # ended: a file
    finally:
        server.stop()
    ticks = [round(json.loads(line)["source_ts"] * 10) for line in Path(f"{live}.jsonl").read_text().splitlines()]
    assert ticks == list(range(ticks[0], ticks[0] + 60))  # the stream's clock, in frames: each frame once, in order
    np.testing.assert_array_equal(np.load(f"{live}.npz")["masks"], np.load(f"{vod}.npz")["masks"])
    assert np.load(f"{live}.npz")["masks"].any(axis=(1, 2)).sum() > 30  # people in them
    capture = cv2.VideoCapture(f"{live}.mp4")
    assert sum(1 for _ in iter(lambda: capture.read()[0], False)) == 60


@pytest.mark.parametrize("path", ["master.m3u8", "master"], ids=["m3u8", "no-suffix"])
def test_an_hls_master_playlist_is_read_at_its_largest_rendition_alone(model_cache, tmp_path, hls_event, path,
                                                                        caplog):
    """A CDN's or broadcaster's master playlist lists renditions of one stream: FFmpeg alone downloaded every one
    and OpenCV masked the first listed, here the smallest (a quarter-size copy: tried before the change). The
    largest is read, every frame, and no other is asked for; live and ended (a master at a path without .m3u8:
    live only, known by its type once FFmpeg has opened it, which reads every rendition then, once)."""
    import av

    from realtime.cli import main

    folder, segments = hls_event
    small = tmp_path / "small"
    small.mkdir()
    with av.open(str(small / "small.mkv"), "w") as container:  # the event at a quarter size: another rendition
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 192, 108, "bgr0"
        for name in segments:
            capture = cv2.VideoCapture(str(folder / name))
            while (read := capture.read())[0]:
                frame = av.VideoFrame.from_ndarray(cv2.resize(read[1], (192, 108)), format="bgr24").reformat(format="bgr0")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    low = HlsServer(small, hls_segments(small / "small.mkv", small, 60, 10), segment_s=1.0)
    high = HlsServer(*hls_event, segment_s=1.0)
    try:
        for kind in ("live", "vod") if path.endswith(".m3u8") else ("live",):
            text = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=150000,RESOLUTION=192x108,CODECS=\"avc1.64000a\"\n"
                    f"{low.url}/{kind}.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=768x432\n{high.url}/{kind}.m3u8\n"
                    "#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.2\"\naudio.m3u8\n")
            master = HlsServer(*hls_event, segment_s=1.0, master=text)
            caplog.clear()
            try:
                assert main(["run", "-i", f"{master.url}/{path}", "-o", str(tmp_path / f"{kind}.mp4"),
                             "--max-frames", "100"]) == 0
            finally:
                master.stop()
            said = [r.getMessage() for r in caplog.records if "is a master playlist of 3 renditions" in r.getMessage()]
            assert len(said) == 1 and f"reading the largest, {high.url}/{kind}.m3u8 (768x432" in said[0], said
            out = cv2.VideoCapture(str(tmp_path / f"{kind}.mp4"))
            assert (out.get(cv2.CAP_PROP_FRAME_WIDTH), out.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (768, 432)
            assert out.get(cv2.CAP_PROP_FRAME_COUNT) == 60
            if path.endswith(".m3u8"):  # without: FFmpeg opened the master once, asking for every rendition
                assert low.asked == [] and set(master.asked) == {"master.m3u8"}, (low.asked, master.asked)
    finally:
        low.stop()
        high.stop()


def test_an_hls_playlist_is_known_by_what_the_server_answers(hls_event):
    """Its type, or ``#EXTM3U`` at the start of a body of no useful type; credentials in the URL go as HTTP Basic.
    A camera, a video file and a server that does not answer are not HLS. A playlist FFmpeg will not read (neither
    its name nor its type says HLS) is refused with the reason, where it was "cannot open ... check the address"."""
    from realtime.capture.hls import hls_playlist_type
    from tests.common import WebFileServer, free_port

    servers = [HlsServer(*hls_event, segment_s=1.0), HlsServer(*hls_event, segment_s=1.0, playlist_type="text/plain"),
               MjpegServer(MEDIA / "carphone_pristine.mp4", fps=10), WebFileServer(MEDIA / "carphone_pristine.mp4")]
    try:
        typed, plain, camera, web = (server.url for server in servers)
        user = typed.replace("http://", "http://viewer:p%40ss@")
        assert [hls_playlist_type(url, 5) for url in [f"{typed}/live", f"{plain}/live?token=1", f"{user}/live"]] == \
            ["application/vnd.apple.mpegurl", "text/plain", "application/vnd.apple.mpegurl"]
        assert [hls_playlist_type(url, 5) for url in [camera, web, f"http://127.0.0.1:{free_port()}/live"]] == [None] * 3
        with open_source(f"{typed}/live") as source, open_source(camera) as other:
            assert type(source).__name__ == "HlsSource" and type(other).__name__ == "CaptureSource"
        with pytest.raises(SourceError, match=r"/live is an HLS playlist served as text/plain at a path without "
                                              r"\.m3u8, which FFmpeg will not read; serve it as application/vnd"):
            open_source(f"{plain}/live")
        with open_source(f"{plain}/live.m3u8") as source:  # its name says HLS: FFmpeg reads it
            assert type(source).__name__ == "HlsSource"
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("restart_s", [7200.0, 0.0], ids=["clock-far-ahead", "clock-back-to-zero"])
def test_a_live_hls_encoder_restarted_on_another_clock_goes_on_in_time(model_cache, tmp_path, restart_s):
    """Three seconds of an event, then its encoder restarts on another clock (``#EXT-X-DISCONTINUITY``): hours ahead,
    or back at zero. ``source_ts`` goes on from the last frame's, nothing counted as dropped, and the video file,
    written on the stream's clock, holds each frame a tenth of a second after the one before (before, the jump put
    two hours of one frame into it, or every later frame at the time of the last)."""
    import av

    from realtime.cli import main

    need_shared()
    clip = MEDIA / "one-by-one-person-detection.mp4"
    segments = hls_segments(clip, tmp_path, frames=30, segment_frames=10, name="first") + \
        hls_segments(clip, tmp_path, frames=30, segment_frames=10, name="restarted", start_s=restart_s)
    server = HlsServer(tmp_path, segments, segment_s=1.0, discontinuity=3)
    out, meta, stats = tmp_path / "out.mkv", tmp_path / "m.jsonl", tmp_path / "s.json"
    try:
        assert main(["run", "-i", f"{server.url}/live.m3u8", "-o", str(out), "--metadata", str(meta),
                     "--stats", str(stats), "--max-frames", "100"]) == 0
    finally:
        server.stop()
    ticks = [round(json.loads(line)["source_ts"] * 10) for line in meta.read_text().splitlines()]
    assert ticks == list(range(ticks[0], ticks[0] + 60)) and json.loads(stats.read_text())["counters"]["dropped"] == 0
    with av.open(str(out)) as container:
        played = [round(float(frame.time) * 10) for frame in container.decode(video=0)]
    assert played == list(range(played[0], played[0] + 60))


def test_a_live_hls_server_away_for_a_while_is_reconnected_and_the_run_still_ends_with_the_event(model_cache, tmp_path,
                                                                                                 hls_event):
    """503 for two seconds mid-event: the frames meanwhile are written fully masked (privacy is on for live sources),
    the stream is reconnected at its live edge — a few segments back, and what was written already is not written
    again (before: a second of the event twice) — and the end of the event still ends the run (the check for the
    end must not take the outage for it, nor the end for an outage)."""
    from realtime.cli import main

    server = HlsServer(*hls_event, segment_s=1.0, window=3, down=(2.5, 4.5))
    meta, stats = tmp_path / "m.jsonl", tmp_path / "s.json"
    try:
        assert main(["run", "-i", f"{server.url}/live.m3u8", "-o", "null", "--metadata", str(meta), "--stats",
                     str(stats), "--max-frames", "300"]) == 0
    finally:
        server.stop()
    counters = json.loads(stats.read_text())["counters"]
    assert counters["disconnects"] >= 1 and counters["reconnects"] >= 1 and counters["privacy_masked_reconnecting"] > 0
    ticks = [round(json.loads(line)["source_ts"] * 10) for line in meta.read_text().splitlines()]
    assert ticks == sorted(ticks) and len(ticks) < 300  # never back in time (placeholders repeat the last frame's)
    assert len(set(ticks)) + counters["dropped"] == 60  # each frame of the event once, or counted as dropped
    assert ticks[-1] == ticks[0] + 59  # resumed after the outage, and ended with the event


def test_a_live_hls_reader_that_falls_behind_counts_the_skipped_segments_as_dropped(hls_event):
    """A reader slower than the stream falls behind until FFmpeg skips the segments that left the playlist: every
    frame from the first to the last is either read or counted dropped; the source ends with the event."""
    server = HlsServer(*hls_event, segment_s=0.5, window=2)
    deadline, stamps = time.monotonic() + 40, []
    try:
        with open_source(f"{server.url}/live.m3u8") as source:
            assert source.live and source.keeps_every_frame
            for frame in source:  # 20 frames/s published, about 7 read
                stamps.append(frame.source_ts)
                time.sleep(0.15)
                assert time.monotonic() < deadline, "the source did not end with the event"
            dropped = source.dropped
    finally:
        server.stop()
    assert dropped > 0 and all(b > a for a, b in itertools.pairwise(stamps))
    assert len(stamps) + dropped == round((stamps[-1] - stamps[0]) * 10) + 1


def test_a_live_hls_source_closed_mid_stream_counts_no_frame_dropped(hls_event):
    """Ctrl-C with the reader waiting to hand over the next frame: that frame was not dropped for being late."""
    server = HlsServer(*hls_event, segment_s=1.0)
    try:
        source = open_source(f"{server.url}/live.m3u8")
        frames = list(itertools.islice(iter(source), 5))
        time.sleep(0.5)  # the reader has the next frame ready, and waits
        source.close()
    finally:
        server.stop()
    first = round(frames[0].source_ts * 10)
    assert [round(f.source_ts * 10) for f in frames] == list(range(first, first + 5))
    assert source.dropped == 0 and source.stats.captured == 6  # the sixth waited in the slot, not taken


@pytest.mark.parametrize("scheme,host", [("udp", "127.0.0.1"), ("udp", "239.255.42.7"), ("tcp", "127.0.0.1")],
                         ids=["udp", "udp-multicast", "tcp"])
def test_an_encoders_mpeg_ts_stream_over_udp_or_tcp_is_masked_live(model_cache, tmp_path, scheme, host):
    """An encoder's MPEG-TS, sent over UDP (to this host, or to a multicast group) or served on a TCP port, read as a
    live stream: each frame written is masked as the same frame of the clip is (it was "unknown source scheme")."""
    from realtime.cli import main

    need_shared()
    clip = MEDIA / "one-by-one-person-detection.mp4"
    sender = TsStreamSender(clip, scheme, host)
    time.sleep(1.0)
    if sender.process.poll() is not None:
        pytest.skip(f"cannot send to {sender.url} here (no route for it)")
    out, meta, masks = tmp_path / "out.mkv", tmp_path / "m.jsonl", tmp_path / "m.npz"
    try:
        assert main(["run", "-i", sender.url, "-o", str(out), "--metadata", str(meta), "--save-masks", str(masks),
                     "--max-frames", "30"]) == 0
    finally:
        sender.stop()
    assert main(["masks", str(clip), "-o", str(tmp_path / "clip.npz"), "--max-frames", "300"]) == 0
    of_clip = {mask.tobytes() for mask in np.load(tmp_path / "clip.npz")["masks"]}
    live = np.load(masks)["masks"]
    assert len(live) == len(meta.read_text().splitlines()) == 30
    assert sum(mask.tobytes() in of_clip for mask in live) >= 25  # UDP joins mid-stream: its first frames may be partial
    capture = cv2.VideoCapture(str(out))
    assert sum(1 for _ in iter(lambda: capture.read()[0], False)) == 30
    # the clip's colour tags (BT.601's) carried on where a second listener does not take the stream from the first:
    # a multicast group (untagged before 2026-12-01); UDP to one host and a TCP sender stay untagged
    with av.open(str(out)) as written:
        tags = ColorTags.of(written.streams.video[0].codec_context)
    assert tags == (color_tags(clip) if host.startswith("239.") else ColorTags()), tags
