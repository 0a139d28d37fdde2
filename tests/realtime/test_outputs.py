"""Outputs that keep one frame size (a video file, an RTSP stream) take frames of another size letterboxed, so a
camera that comes back at another resolution does not end the recording."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.capture import SourceOptions, open_source
from realtime.cli import main
from realtime.outputs import SinkOptions, open_sink
from realtime.outputs.base import letterbox
from tests.common import MEDIA, RtspServer, WebFileServer, free_port, need_shared


def _clip_frames(count):
    capture = cv2.VideoCapture(str(MEDIA / "carphone_pristine.mp4"))
    frames = [capture.read()[1] for _ in range(count)]
    capture.release()
    return frames


def test_letterbox_keeps_the_aspect_and_centres_on_black():
    rng = np.random.default_rng()
    image = rng.integers(1, 256, (30, 90, 3), np.uint8)  # 3:1 into 40x40: 40x13, rows 13..26
    boxed = letterbox(image, (40, 40))
    assert boxed.shape == (40, 40, 3)
    assert not boxed[:13].any() and not boxed[26:].any() and boxed[13:26].all()
    np.testing.assert_array_equal(boxed[13:26], cv2.resize(image, (40, 13), interpolation=cv2.INTER_AREA))
    tall = letterbox(rng.integers(1, 256, (80, 20, 4), np.uint8), (40, 40))  # 1:4, BGRA: bars left and right
    assert tall.shape == (40, 40, 4) and not tall[:, :15].any() and not tall[:, 25:].any() and tall[:, 15:25].all()


def test_video_file_takes_a_new_frame_size_letterboxed(tmp_path, caplog):
    need_shared()
    frames = _clip_frames(6)
    larger = [cv2.resize(f, (352, 200)) for f in frames[2:4]]  # the camera is back at another size and aspect
    sequence = frames[:2] + larger + frames[4:]
    path = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING), open_sink(str(path), SinkOptions(fps=10)) as sink:
        for image in sequence:
            sink.write(image)
    assert sink.frames_written == 6 and sink.frames_letterboxed == 2
    warnings = [r for r in caplog.records if "frame size changed from 176x144 to 352x200" in r.getMessage()]
    assert len(warnings) == 1, "warned once, not per frame"
    capture = cv2.VideoCapture(str(path))
    written = [capture.read()[1] for _ in range(6)]
    assert capture.read()[0] is False
    for image, out in zip(sequence, written, strict=True):
        assert out.shape == (144, 176, 3)
        expected = image if image.shape == out.shape else letterbox(image, (176, 144))
        assert cv2.PSNR(expected, out) > 28  # H.264 is lossy; a shifted or stretched frame scores far lower
    assert written[2][:20].max() < 24 and written[2][-20:].max() < 24  # the bars above and below are black


@pytest.mark.parametrize("suffix,size_wh,codec", [(".mp4", (176, 144), "h264"), (".mov", (176, 144), "h264"),
                                                   (".m4v", (176, 144), "h264"), (".ts", (175, 143), "h264"),
                                                   (".mp4", (175, 143), "h264"), (".mkv", (176, 144), "mpeg4"),
                                                   (".mkv", (175, 143), "mpeg4"), (".avi", (176, 144), "mjpeg"),
                                                   (".avi", (173, 141), "mjpeg"), (".webm", (176, 144), "vp9"),
                                                   (".webm", (175, 143), "vp9")])
def test_video_files_hold_the_codec_of_their_container_and_every_frame(tmp_path, suffix, size_wh, codec):
    """.mp4/.mov: H.264 (browsers and phones play it); an odd size gets a copy of its last column and row (4:2:0
    video takes even sides; OpenCV's AVI writer would drop them), every pixel of the frame kept."""
    need_shared()
    import av

    frames = [cv2.resize(f, size_wh) for f in _clip_frames(30)]
    path = tmp_path / f"out{suffix}"
    with open_sink(str(path), SinkOptions(fps=29.97)) as sink:
        for frame in frames:
            sink.write(frame)
    even_wh = (size_wh[0] + size_wh[0] % 2, size_wh[1] + size_wh[1] % 2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec and (stream.width, stream.height) == even_wh
        assert abs(float(stream.average_rate) - 29.97) < 0.01
    capture = cv2.VideoCapture(str(path))
    written = [capture.read()[1] for _ in range(30)]
    assert capture.read()[0] is False
    padded = [cv2.copyMakeBorder(f, 0, even_wh[1] - size_wh[1], 0, even_wh[0] - size_wh[0], cv2.BORDER_REPLICATE)
              for f in frames]
    assert min(cv2.PSNR(frame, out) for frame, out in zip(padded, written, strict=True)) > 30


@pytest.mark.parametrize("kind", ["rtmp", "stdout", ".ts"])
def test_streams_have_a_key_frame_every_two_seconds(tmp_path, kind):
    """What a viewer joins (an RTMP stream, a relay behind ``-o -``) or a player seeks to without an index (MPEG-TS):
    a key frame every 2 s, as streaming services ask; x264 on its own makes one each 250 frames."""
    need_shared()
    import av

    from realtime.outputs.files import VIDEO_FORMATS, PyAVWriter
    from realtime.outputs.pipe import STDOUT_FORMAT
    from realtime.outputs.rtmp import RTMP_FORMAT

    video_format = {"rtmp": RTMP_FORMAT, "stdout": STDOUT_FORMAT, ".ts": VIDEO_FORMATS[".ts"]}[kind]
    path = tmp_path / f"out.{video_format.muxer}"  # the stream, as a file
    writer = PyAVWriter(path, 10.0, (176, 144), video_format)
    for frame in _clip_frames(50):
        writer.write(frame)
    writer.release()
    with av.open(str(path)) as container:
        assert [k for k, packet in enumerate(container.demux(video=0)) if packet.is_keyframe] == [0, 20, 40]


@pytest.mark.parametrize("suffix", [".mp4", ".ts", ".mkv", ".avi", ".webm"])
def test_frames_given_times_are_written_at_those_times(tmp_path, suffix):
    """Times (a camera's arrival times) from the first frame: MP4 and MKV hold them to the millisecond, also a clock
    that stood still (one millisecond on); AVI, one frame per period, holds each frame until the next and keeps the
    first of two in one period. A clock that went back (reset) goes on one period after the frame before."""
    need_shared()
    import av

    frames = _clip_frames(7)
    times = [100.0, 100.013, 100.05, 100.31, 100.31, 102.0, 7.0]  # seconds on any clock
    path = tmp_path / f"out{suffix}"
    with open_sink(str(path), SinkOptions(fps=25)) as sink:
        for frame, ts in zip(frames, times, strict=True):
            sink.write(frame, present_ts=ts)
    with av.open(str(path)) as container:
        played = [(float(f.time), f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    offsets = [ts - played[0][0] for ts, _ in played]
    if suffix == ".avi":  # periods 0, 0 (merged), 1, 8 (7.75), 8 (merged), 50, 51
        assert sink.frames_written == 5 and offsets == pytest.approx([0.0, 0.04, 0.32, 2.0, 2.04])
        kept = [frames[0], frames[2], frames[3], frames[5], frames[6]]
    else:
        assert sink.frames_written == 7
        assert offsets == pytest.approx([0.0, 0.013, 0.05, 0.31, 0.311, 2.0, 2.04], abs=1e-6)
        kept = frames
    assert min(cv2.PSNR(frame, image) for frame, (_, image) in zip(kept, played, strict=True)) > 30


def _decoded_bgra(path):
    """A WebM's frames with their alpha (FFmpeg's own VP9 decoder leaves the alpha out; libvpx's reads it)."""
    import av

    with av.open(str(path)) as container:
        decoder = av.CodecContext.create("libvpx-vp9", "r")
        return [frame.to_ndarray(format="bgra") for packet in container.demux(container.streams.video[0])
                for frame in decoder.decode(packet)]


def test_cutout_to_webm_is_a_transparent_video(model_cache, tmp_path):
    """`--mode cutout -o cut.webm`: VP9 with an alpha channel (before, cutout's BGRA frames could only go to an image
    folder): the person opaque, the background transparent, as in the run's own frames."""
    need_shared()
    from realtime.pipeline import Pipeline

    with Pipeline(str(MEDIA / "carphone_pristine.mp4"), mode="cutout", output=str(tmp_path / "cut.webm"),
                  max_frames=20) as pipeline:
        expected = [result.image for result in pipeline]
    written = _decoded_bgra(tmp_path / "cut.webm")
    assert len(written) == 20 and written[0].shape == (144, 192, 4)  # the clip's pixels, 128/117 wide, made square
    from fractions import Fraction

    from realtime.outputs.base import square_pixels

    expected = [square_pixels(image, Fraction(128, 117)) for image in expected]
    for image, out in zip(expected, written, strict=True):
        opaque = image[..., 3] == 255
        assert 0.2 < opaque.mean() < 0.8  # a person, and room around them
        assert np.mean((out[..., 3] > 127) == opaque) > 0.97  # the alpha, through lossy VP9
        assert cv2.PSNR(np.ascontiguousarray(image[..., :3][opaque]), np.ascontiguousarray(out[..., :3][opaque])) > 30


def test_run_over_images_of_two_sizes_to_a_video_file(model_cache, tmp_path):
    need_shared()
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(_clip_frames(4)):
        cv2.imwrite(str(folder / f"{index:03d}.png"), frame if index % 2 == 0 else cv2.resize(frame, (264, 216)))
    out = tmp_path / "out.mp4"
    assert main(["run", "-i", str(folder), "-o", str(out), "--mode", "pixelate"]) == 0
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (176, 144)


@pytest.mark.skipif(RtspServer.available() is not None, reason=str(RtspServer.available()))
@pytest.mark.parametrize("first_wh,later_wh", [((176, 144), (320, 240)), ((175, 143), (175, 143))],
                         ids=["new-size-letterboxed", "odd-size-padded"])
def test_rtsp_stream_keeps_the_size_of_its_first_frame(first_wh, later_wh):
    """A camera back at another size is letterboxed into the first; an odd size gets a copy of its last column and
    row (x264 would drop them), every pixel kept."""
    need_shared()
    frames = [cv2.resize(frame, first_wh) for frame in _clip_frames(20)]
    port = free_port()
    sink = open_sink(f"rtsp://127.0.0.1:{port}/masked", SinkOptions(fps=25))
    errors: list[BaseException] = []
    stop = threading.Event()

    def feed():
        try:
            for index in range(10_000):
                if stop.is_set():
                    return
                image = frames[index % len(frames)]
                sink.write(image if index < 25 else cv2.resize(image, later_wh))  # a new size after 1 s
                time.sleep(0.04)
        except BaseException as exc:
            errors.append(exc)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 20
        while (sink.process is None or sink.frames_written < 40) and time.monotonic() < deadline:
            time.sleep(0.1)
        with open_source(f"rtsp://127.0.0.1:{port}/masked", SourceOptions(open_timeout=5, read_timeout=5)) as client:
            received = [frame.bgr for _, frame in zip(range(10), client, strict=False)]
        assert not errors, errors
        assert [image.shape for image in received] == [(144, 176, 3)] * 10
        assert sink.frames_letterboxed >= 10 if later_wh != first_wh else sink.frames_letterboxed == 0
        if first_wh == (175, 143):  # the added column and row are copies of the last (H.264 is lossy: close)
            edges = [(image[:, -1], image[:, -2]) for image in received] + [(image[-1], image[-2]) for image in received]
            assert max(cv2.absdiff(added, last).mean() for added, last in edges) < 6
    finally:
        stop.set()
        feeder.join(timeout=5)
        sink.close()


def test_an_anamorphic_source_is_shown_as_wide_as_it_is_in_every_output(model_cache, tmp_path):
    """A 16:9 recording stored with narrow pixels (DVB's 720x576, HDV's 1440x1080, a DVR's; here the surveillance
    clip stored 576x432 with 4:3 pixels): before, every output dropped the pixels' shape and played squeezed to 4:3.
    Video files and ``-o -`` state it (576x432 at 4:3, shown 768x432); WebM, a browser preview and an RTSP stream
    (GStreamer's openh264enc cannot state it) get square pixels (768x432)."""
    import subprocess
    import sys
    import urllib.request
    from fractions import Fraction

    import av

    from tests.common import anamorphic_copy

    need_shared()
    clip = anamorphic_copy(MEDIA / "one-by-one-person-detection.mp4", tmp_path / "dvb.mp4", 20, (576, 432),
                           Fraction(4, 3))
    with open_source(str(clip)) as source, open_source(str(MEDIA / "one-by-one-person-detection.mp4")) as square:
        assert source.sample_aspect == Fraction(4, 3) and square.sample_aspect is None
    with open_source(str(MEDIA / "carphone_pristine.mp4")) as qcif:  # 176x144 shown at 4:3, as players show it
        assert qcif.sample_aspect == Fraction(128, 117)
    outputs = [tmp_path / f"out{suffix}" for suffix in (".mp4", ".mov", ".mkv", ".avi", ".webm")]
    assert main(["run", "-i", str(clip), *[arg for out in outputs for arg in ("-o", str(out))]]) == 0
    assert main(["run", "-i", str(clip), "-o", str(tmp_path / "cut" / "dvb.mkv"), "--segment", "1"]) == 0
    segments = sorted((tmp_path / "cut").iterdir())
    piped = subprocess.run([sys.executable, "-m", "realtime.cli", "run", "-i", str(clip), "-o", "-"],
                           capture_output=True, timeout=300)
    (tmp_path / "piped.ts").write_bytes(piped.stdout)
    assert len(segments) == 2
    for path in [*outputs, *segments, tmp_path / "piped.ts"]:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            shown = (video.width, video.height, video.sample_aspect_ratio or 1)
            assert shown == ((768, 432, 1) if path.suffix == ".webm" else (576, 432, Fraction(4, 3))), (path, shown)
            assert next(container.decode(video)).to_ndarray(format="bgr24").shape[:2] == (432, video.width)
    frame = cv2.VideoCapture(str(clip)).read()[1]
    port = free_port()
    preview, stream = open_sink(f"http://127.0.0.1:{port}/cam/"), open_sink(f"rtsp://127.0.0.1:{free_port()}/dvb")
    try:
        for sink in (preview, stream):
            sink.sample_aspect = Fraction(4, 3)  # as the pipeline sets it from the source
        preview.write(frame)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cam/frame.jpg", timeout=5) as response:
            assert cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR).shape == (432, 768, 3)
        stop = threading.Event()
        feeder = threading.Thread(target=lambda: [stream.write(frame) or time.sleep(0.04) for _ in iter(
            lambda: stop.is_set(), True)], daemon=True)
        feeder.start()
        deadline = time.monotonic() + 20
        while stream.frames_written < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        with open_source(stream.uri, SourceOptions(open_timeout=5, read_timeout=5)) as client:
            assert next(iter(client)).bgr.shape == (432, 768, 3)
        stop.set()
        feeder.join(timeout=5)
    finally:
        preview.close()
        stream.close()


def test_an_hdr_clips_colours_are_carried_on_as_a_player_decodes_them(model_cache, tmp_path):
    """An HDR10 clip (HEVC 10-bit, BT.2020, PQ: a phone's or a camera's HDR recording): OpenCV's FFmpeg decodes
    BT.2020 off by about 10 levels, and the outputs were untagged, so players showed them as SDR BT.601/709. Now it
    is decoded by PyAV, and every video output states the matrix it was written with and the clip's primaries and
    transfer: FFmpeg, decoding by the tags as a player does, sees the clip's colours (the parking lot, no people)."""
    import av

    from tests.common import color_tagged_copy

    need_shared()
    clip = color_tagged_copy(MEDIA / "car-detection.mp4", tmp_path / "hdr.mkv", 10, (768, 432), (9, 9, 16), "BT2020",
                             codec="libx265", pix_fmt="yuv420p10le")
    outputs = [tmp_path / f"out{suffix}" for suffix in (".mp4", ".mkv", ".webm")]
    assert main(["run", "-i", str(clip), *[arg for out in outputs for arg in ("-o", str(out))]]) == 0
    assert main(["run", "-i", str(clip), "-o", str(tmp_path / "cut" / "hdr.mp4"), "--segment", "1"]) == 0
    outputs += sorted((tmp_path / "cut").iterdir())
    server = WebFileServer(clip)  # on a web server too (decoded by OpenCV, and outputs untagged, before 2026-12-01)
    try:
        assert main(["run", "-i", server.url, "-o", str(tmp_path / "web.mp4")]) == 0
    finally:
        server.stop()
    outputs.append(tmp_path / "web.mp4")

    def shown(path: Path) -> tuple[tuple[int, int, int], np.ndarray]:  # as FFmpeg decodes it, by its tags
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            frame = next(container.decode(video=0))
            return (int(context.colorspace), int(context.color_primaries), int(context.color_trc)), \
                frame.to_ndarray(format="bgr24").astype(int)

    tags, expected = shown(clip)
    for out in outputs:
        tags, image = shown(out)
        assert tags == (6, 9, 16) and np.abs(image - expected).mean() < 2.5, (out, tags, np.abs(image - expected).mean())


def test_frames_of_images_are_written_as_true_colour(model_cache, tmp_path):
    """A GIF's frames, the test pattern's (and a webcam's, an image folder's: test_browser_preview.py) are RGB as
    they are to be shown: their video outputs say so (the BT.601 matrix they are written with, sRGB's BT.709
    primaries), where they were untagged and an HD player took them for BT.709 YUV. A clip that states nothing
    stays untagged (players then guess alike for it and its output)."""
    import av

    from realtime.video_decoding import TRUE_COLOR

    need_shared()
    cases = {"head-pose-face-detection-female-and-male.gif": (6, 1, 1), "synthetic:1280x720@10?frames=5": (6, 1, 1),
             "carphone_pristine.mp4": (2, 2, 2)}
    for source, tags in cases.items():
        given = source if source.startswith("synthetic:") else str(MEDIA / source)
        with open_source(given) as opened:
            assert (opened.color == TRUE_COLOR) == (tags != (2, 2, 2)), source
        assert main(["run", "-i", given, "-o", str(tmp_path / "out.mp4"), "--max-frames", "5"]) == 0
        with av.open(str(tmp_path / "out.mp4")) as container:
            context = container.streams.video[0].codec_context
            assert (int(context.colorspace), int(context.color_primaries), int(context.color_trc)) == tags, source


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_a_port_already_in_use_is_one_line_and_no_table(model_cache, scheme):
    need_shared()
    if scheme == "rtsp" and RtspServer.available() is not None:
        pytest.skip(str(RtspServer.available()))
    import socket

    from tests.realtime.test_cli_models import assert_one_line_error, run_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "-i", str(MEDIA / "carphone_pristine.mp4"), "-o", f"{scheme}://127.0.0.1:{port}/x/",
                         "--max-frames", "3")
    assert_one_line_error(result, f"127.0.0.1:{port}", "choose another host or port")


def _assert_ends_in_error(result, *fragments):
    """A run that stopped part-way: its table of the frames done, then one error line, exit 2, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("realtime-mask: error: ") and all(f in last for f in fragments), last


def test_a_disk_full_or_read_only_from_the_start_is_said_as_it_is(model_cache, small_disk):
    """A disk full before the first frame said it had "finalised the file with its 0 frames", a file that was not
    there; a read-only mount (a container's volume, a snapshot) was "permission denied", even for root."""
    import subprocess

    from tests.realtime.test_cli_models import assert_one_line_error, run_cli

    video = small_disk / "o.mp4"
    with open(small_disk / "fill", "wb") as fill:  # the 5 MB disk filled up
        try:
            while True:
                fill.write(b"\0" * (1 << 16))
                fill.flush()
        except OSError:
            pass
    result = run_cli("run", "-i", "synthetic:64x48@10", "-o", str(video), "--max-frames", "2")
    assert_one_line_error(result, f"the disk of {video} is full (0.0 MB left); free space or write elsewhere")
    assert not video.exists()
    (small_disk / "fill").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for output, fragments in [(video, [f"cannot write {video}: {small_disk} is on a read-only file system"]),
                              (small_disk / "frames/", ["cannot create output folder", "Read-only file system"])]:
        result = run_cli("run", "-i", "synthetic:64x48@10", "-o", str(output), "--max-frames", "2")
        assert_one_line_error(result, *fragments, "choose a writable path")
    # segments (their folders made as each begins) were let through, to fail after the model loaded and a frame was
    # recorded elsewhere: now said before the run starts too
    elsewhere = small_disk.parent / "elsewhere.mkv"
    for extra in [["--metadata", str(small_disk / "%Y" / "m.jsonl")], ["--save-masks", str(small_disk / "m.npz")],
                  ["-o", str(small_disk / "rec" / "%Y" / "cam.mkv")]]:
        result = run_cli("run", "-i", "synthetic:64x48@10", "-o", str(elsewhere), *extra, "--segment", "1",
                         "--max-frames", "2")
        assert_one_line_error(result, f"{small_disk} is on a read-only file system", "choose a writable path")
        assert not list(small_disk.parent.glob("elsewhere*"))
    result = run_cli("run", "-i", f"rtsp://127.0.0.1:{free_port()}/cam", "-o", str(small_disk / "%Y" / "cam.mkv"),
                     "--segment", "1")  # said before the camera is tried (nothing listens there)
    assert_one_line_error(result, f"{small_disk} is on a read-only file system")


def test_a_full_disk_stops_the_run_with_a_playable_file(model_cache, small_disk):
    """OpenCV's writer drops frames silently on a full disk and the MP4's index would not fit: the run used to end
    with exit 0 and an unplayable file. It must stop while the file can still be finalised, and say so."""
    need_shared()
    import re

    from tests.realtime.test_cli_models import run_cli

    video, metadata = small_disk / "o.mp4", small_disk / "m.jsonl"
    result = run_cli("run", "-i", str(MEDIA / "one-by-one-person-detection.mp4"), "-o", str(video),
                     "--metadata", str(metadata), "--mode", "pixelate")
    _assert_ends_in_error(result, "nearly full", "finalised the file", "free space or write elsewhere")
    frames = int(re.search(r"with its (\d+) frames", result.stderr).group(1))
    capture = cv2.VideoCapture(str(video))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    assert 100 < frames < 1394 and decoded == frames == len(metadata.read_text().splitlines())


def test_a_full_disk_stops_the_run_with_every_mask_before_it_archived(model_cache, small_disk, tmp_path):
    """The mask archive on a full disk: the run stops (exit 2), and the archive holds the mask of every frame whose
    metadata line was written (it used to be written at the end, needing room for all of it at once)."""
    need_shared()
    import re

    from tests.realtime.test_cli_models import run_cli

    masks, metadata = small_disk / "m.npz", tmp_path / "m.jsonl"
    result = run_cli("run", "-i", str(MEDIA / "one-by-one-person-detection.mp4"), "-o", "null", "--save-masks",
                     str(masks), "--metadata", str(metadata))
    _assert_ends_in_error(result, str(masks), "No space left on device", "free space or write elsewhere")
    kept = int(re.search(r"it holds the (\d+) masks before", result.stderr).group(1))
    stored = np.load(masks)["masks"]
    assert 100 < kept < 1394 and stored.shape == (kept, 432, 768) == (len(metadata.read_text().splitlines()), 432, 768)
    assert stored.max() == 255 and stored[:, 200:, 300:500].mean() > 0  # real masks, people in them


def test_a_full_disk_stops_an_image_folder_without_a_broken_image(model_cache, small_disk):
    need_shared()
    from tests.realtime.test_cli_models import run_cli

    result = run_cli("run", "-i", str(MEDIA / "one-by-one-person-detection.mp4"), "-o", f"{small_disk}/frames/")
    _assert_ends_in_error(result, "the disk is full", "free space or write elsewhere")
    written = sorted((small_disk / "frames").glob("*.png"))
    assert written and all(cv2.imread(str(path)) is not None for path in written)


def test_a_photo_is_masked_into_one_image(model_cache, tmp_path):
    """`-i photo.png -o masked.jpg` (before: "cannot tell what output masked.jpg is"): the run's frame, as the image
    folder output writes it, in one file of the format its name asks for; a cutout keeps its alpha in a .png."""
    need_shared()
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), _clip_frames(1)[0])
    for out in ("masked.png", "masked.jpg", "frames/"):
        assert main(["run", "-i", str(photo), "-o", str(tmp_path / out), "--mode", "pixelate"]) == 0
    masked, as_folder = cv2.imread(str(tmp_path / "masked.png")), cv2.imread(str(tmp_path / "frames" / "photo.png"))
    assert np.array_equal(masked, as_folder)
    changed = np.any(masked != cv2.imread(str(photo)), axis=2).mean()
    assert 0.05 < changed < 0.9  # a person pixelated, the rest as it was
    assert (tmp_path / "masked.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, not a PNG named .jpg
    assert cv2.PSNR(cv2.imread(str(tmp_path / "masked.jpg")), masked) > 35
    assert main(["run", "-i", str(photo), "-o", str(tmp_path / "cut.png"), "--mode", "cutout"]) == 0
    assert main(["run", "-i", str(photo), "-o", str(tmp_path / "cut/"), "--mode", "cutout"]) == 0
    cut = cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED)
    assert cut.shape[2] == 4 and np.array_equal(cut, cv2.imread(str(tmp_path / "cut" / "photo.png"),
                                                                   cv2.IMREAD_UNCHANGED))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "cut.png", "frames", "masked.jpg", "masked.png",
                                                          "photo.png"]  # no partial file left


def test_a_snapshot_of_a_video_or_stream_is_its_first_masked_frame(model_cache, tmp_path):
    need_shared()
    clip = str(MEDIA / "one-by-one-person-detection.mp4")
    for out in ("snap.webp", "frames/"):
        assert main(["run", "-i", clip, "-o", str(tmp_path / out), "--max-frames", "1"]) == 0
    assert np.array_equal(cv2.imread(str(tmp_path / "snap.webp")), cv2.imread(str(tmp_path / "frames" / "000000.png")))


def test_one_image_takes_one_frame_and_keeps_it(tmp_path):
    """A second frame (an output shared by several runs' code paths, or a source longer than it said) is an error
    that leaves the first image whole."""
    from engines.errors import OutputError

    first, second = _clip_frames(2) if MEDIA.is_dir() else np.full((2, 48, 64, 3), (10, 200, 30), np.uint8)
    with open_sink(str(tmp_path / "one.png")) as sink:
        sink.write(first)
        with pytest.raises(OutputError, match=r"one\.png is one image and a second frame came; write an image folder"):
            sink.write(second)
    assert np.array_equal(cv2.imread(str(tmp_path / "one.png")), first)
    assert [p.name for p in tmp_path.iterdir()] == ["one.png"]


def test_a_folder_of_photos_is_masked_into_a_folder_under_their_own_names(model_cache, tmp_path, caplog):
    """`-i photos/ -o masked/` (before: 000000.png, 000001.png ..., a photo's name lost): each photo under its own
    name and format, as masking it alone writes it; cutout's BGRA in PNGs; a %d pattern, or names that would clash,
    numbered."""
    need_shared()
    photos = tmp_path / "photos"
    photos.mkdir()
    frames = _clip_frames(3)
    for name, frame in zip(["b-car.jpg", "a-car.png", "c-car.ppm"], frames, strict=True):
        cv2.imwrite(str(photos / name), frame)
    assert main(["run", "-i", str(photos), "-o", str(tmp_path / "masked"), "--mode", "pixelate"]) == 0
    assert sorted(p.name for p in (tmp_path / "masked").iterdir()) == ["a-car.png", "b-car.jpg", "c-car.png"]
    for name, written in (("b-car.jpg", "b-car.jpg"), ("a-car.png", "a-car.png"), ("c-car.ppm", "c-car.png")):
        alone = tmp_path / f"alone-{written}"
        assert main(["run", "-i", str(photos / name), "-o", str(alone), "--mode", "pixelate"]) == 0
        assert (tmp_path / "masked" / written).read_bytes() == alone.read_bytes(), name  # the same image, byte for byte
    assert main(["run", "-i", str(photos), "-o", str(tmp_path / "cut"), "--mode", "cutout"]) == 0
    cut = sorted((tmp_path / "cut").iterdir())
    assert [p.name for p in cut] == ["a-car.png", "b-car.png", "c-car.png"]
    assert all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape[2] == 4 for p in cut)
    assert main(["run", "-i", str(photos), "-o", str(tmp_path / "numbered" / "%03d.jpg")]) == 0
    assert sorted(p.name for p in (tmp_path / "numbered").iterdir()) == ["000.jpg", "001.jpg", "002.jpg"]
    cv2.imwrite(str(photos / "a-car.jpg"), frames[0])  # a-car.png and a-car.jpg: one name for two photos
    assert main(["run", "-i", str(photos), "-o", str(tmp_path / "clash")]) == 0
    assert len(list((tmp_path / "clash").iterdir())) == 4 and (tmp_path / "clash" / "000000.png").exists()
    assert any("names clash (a-car): numbered instead" in r.getMessage() for r in caplog.records)


def test_a_preview_with_viewer_credentials_is_shown_only_to_that_viewer(tmp_path):
    """`-o http://viewer:secret@HOST:PORT/cam/` (before: the server tried to resolve "viewer:secret@host" and the error
    showed the password): 401 asking for credentials without them or with wrong ones, the frame with them, another
    preview on the port open to anyone; the password in no message."""
    import base64
    import urllib.error
    import urllib.request

    from tests.common import free_port

    port = free_port()
    guarded = open_sink(f"http://viewer:s%40cret@127.0.0.1:{port}/cam/")
    shared = open_sink(f"http://127.0.0.1:{port}/open/")
    frame = np.full((48, 64, 3), (40, 200, 90), np.uint8)

    def status(path: str, password: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        if password is not None:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"viewer:{password}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.headers.get("Content-Type")
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("WWW-Authenticate")

    try:
        for sink in (guarded, shared):
            sink.write(frame)
        assert status("/cam/frame.jpg") == (401, 'Basic realm="realtime-mask", charset="UTF-8"')
        assert status("/cam/stats.json", "wrong")[0] == 401
        assert status("/cam/frame.jpg", "s@cret") == (200, "image/jpeg")
        assert status("/open/frame.jpg") == (200, "image/jpeg")
        assert guarded.uri == f"http://***@127.0.0.1:{port}/cam/"
    finally:
        guarded.close()
        shared.close()


def test_a_recording_is_cut_into_segments_with_no_frame_lost_or_doubled(model_cache, tmp_path):
    """`--segment 1` (before: one file growing for the whole run): a 3 s clip at 10 fps gives three files of 10 frames,
    named by the time they began, in folders made from the name's strftime fields; their frames, in order, are the
    clip's. Without a video output, with a segment under a second or with --audio copy: one-line errors."""
    from tests.common import numbered_video
    from tests.realtime.test_cli_models import assert_one_line_error, run_cli

    clip = numbered_video(tmp_path / "n.mkv", [k / 10 for k in range(30)], size_wh=(96, 64))
    pattern = tmp_path / "rec" / "%Y" / "cam-%H%M%S.mkv"
    assert main(["run", "-i", str(clip), "-o", str(pattern), "--segment", "1", "--mode", "blur"]) == 0
    files = sorted((tmp_path / "rec").glob("*/cam-*.mkv"))
    assert len(files) == 3 and files[0].parent.name == time.strftime("%Y")
    segments = []
    for path in files:
        capture, numbers = cv2.VideoCapture(str(path)), []
        while (frame := capture.read()[1]) is not None:
            numbers.append(round(float(frame.mean()) / 8))  # flat frame k is at level 8 k (lossy: rounded)
        segments.append(numbers)
    segments.sort()  # by their first frame
    assert [len(numbers) for numbers in segments] == [10, 10, 10]
    assert [n for numbers in segments for n in numbers] == list(range(30))
    (tmp_path / "afile").write_bytes(b"")
    for args, fragment in [(["-i", str(clip), "-o", "null", "--segment", "10"], "--segment cuts video file outputs"),
                           (["-i", str(clip), "-o", str(tmp_path / "afile" / "%Y" / "x.mkv"), "--segment", "10"],
                            f"{tmp_path / 'afile'} is a file, not a folder"),
                           (["-i", str(clip), "-o", str(tmp_path / "x.mp4"), "--segment", "0.5"],
                            "--segment must be a number of seconds >= 1"),
                           (["-i", str(MEDIA / "car-detection.mp4"), "-o", str(tmp_path / "x.mp4"), "--segment", "9",
                             "--audio", "copy"], "--audio copy cannot go with --segment")]:
        if MEDIA.is_dir() or "--audio" not in args:
            assert_one_line_error(run_cli("run", *args), fragment)


def test_metadata_and_masks_are_cut_beside_the_video_and_kept_as_long(model_cache, tmp_path):
    """With --segment, --metadata and --save-masks (before: one file each, growing for the whole run beside a cut
    video: ~0.9 GB of lines a day at 30 fps) are cut at the same frames, into files named as the video's segments:
    each video segment's frames are the indexes of its .jsonl and the masks of its .npz. --keep deletes their old
    segments too (an earlier run's). Without a video output, --metadata alone is cut."""
    from tests.common import numbered_video

    clip = numbered_video(tmp_path / "n.mkv", [k / 10 for k in range(30)], size_wh=(96, 64))
    rec = tmp_path / "rec"
    rec.mkdir()
    old = [rec / time.strftime(f"cam-%Y%m%d-%H%M%S.{suffix}", time.localtime(time.time() - 7200))
           for suffix in ("jsonl", "npz")]
    for path in old:
        path.write_bytes(b"an earlier run's segment")
    assert main(["run", "-i", str(clip), "-o", str(rec / "cam.mkv"), "--metadata", str(rec / "cam.jsonl"),
                 "--save-masks", str(rec / "cam.npz"), "--segment", "1", "--keep", "1h", "--mode", "fill"]) == 0
    assert not any(path.exists() for path in old)
    videos = sorted(rec.glob("cam-*.mkv"))
    assert len(videos) == 3
    first_frames = []
    for video in videos:
        lines = [json.loads(line) for line in video.with_suffix(".jsonl").read_text().splitlines()]
        masks = np.load(video.with_suffix(".npz"))["masks"]
        capture, frames = cv2.VideoCapture(str(video)), 0
        while capture.read()[0]:
            frames += 1
        indexes = [line["index"] for line in lines]
        assert frames == len(masks) == len(lines) == 10 and indexes == list(range(indexes[0], indexes[0] + 10))
        first_frames.append(indexes[0])
    assert sorted(first_frames) == [0, 10, 20]
    assert main(["run", "-i", str(clip), "-o", "null", "--metadata", str(tmp_path / "m.jsonl"), "--segment", "1"]) == 0
    lines = [path.read_text().splitlines() for path in sorted(tmp_path.glob("m-*.jsonl"))]
    assert sorted(len(part) for part in lines) == [10, 10, 10]


def test_a_files_segments_are_named_by_the_time_in_the_recording(model_cache, tmp_path):
    """A file's segments were named by when they were written: a clip cut every second and processed in well under
    a second got one name, then -1, -2, …. Now by the recording's own time — its creation_time plus the frame's place
    in it (car-detection.mp4 says 2018-04-19 22:46:00 UTC), the video's segments and the metadata's alike — or, for a
    file that does not say, the run's start plus the frame's place: names as far apart as the segments."""
    need_shared()
    from datetime import UTC, datetime

    from tests.common import numbered_video

    rec = tmp_path / "rec"
    assert main(["run", "-i", str(MEDIA / "car-detection.mp4"), "-o", str(rec / "%Y%m%d-%H%M%S.mkv"), "--metadata",
                 str(rec / "m.jsonl"), "--segment", "2", "--max-frames", "60"]) == 0
    recorded = datetime(2018, 4, 19, 22, 46, tzinfo=UTC).timestamp()
    parts = sorted(rec.glob("m-*.jsonl"))
    assert len(parts) >= 2 and len(list(rec.glob("*.mkv"))) == len(parts)
    for part in parts:
        first = json.loads(part.read_text().splitlines()[0])
        name = time.strftime("%Y%m%d-%H%M%S", time.localtime(recorded + first["source_ts"]))
        assert part.name == f"m-{name}.jsonl" and (rec / f"{name}.mkv").is_file()
    clip = numbered_video(tmp_path / "n.mkv", [k / 10 for k in range(30)], size_wh=(96, 64))  # no creation_time
    started = time.time()
    assert main(["run", "-i", str(clip), "-o", str(tmp_path / "cam.mkv"), "--segment", "1"]) == 0
    begun = sorted(time.mktime(time.strptime(path.stem, "cam-%Y%m%d-%H%M%S")) for path in tmp_path.glob("cam-*.mkv"))
    assert len(begun) == 3 and int(started) <= begun[0] <= time.time()  # from the run's start (the model loaded) ...
    assert [b - begun[0] for b in begun] == [0, 1, 2]  # ... a second apart each


def test_keep_deletes_the_segments_older_than_the_window_and_nothing_else(model_cache, tmp_path):
    """`--keep` (before: segments piled up until the disk was full, and then the run stopped): each time a segment
    begins, the output's segments whose span is further back than the window are deleted — an earlier run's too, by
    the time in their names — and the folders of the name's time fields that this empties. Files with other names,
    other suffixes, in other folders, and recent segments are kept. Bad durations and names: one-line errors."""
    from tests.common import numbered_video
    from tests.realtime.test_cli_models import assert_one_line_error, run_cli

    clip = numbered_video(tmp_path / "n.mkv", [k / 10 for k in range(20)], size_wh=(96, 64))
    rec, now = tmp_path / "rec", time.time()

    def earlier(seconds_ago: float, name: str = "cam-%H%M%S.mkv") -> Path:
        path = rec / time.strftime(f"%Y-%m-%d/{name}", time.localtime(now - seconds_ago))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"an earlier run's segment")
        return path

    old = [earlier(3 * 86400), earlier(3 * 86400 + 60, "cam-%H%M%S-1.mkv"), earlier(2 * 3600), earlier(10 * 86400)]
    kept = [earlier(600), earlier(3 * 86400, "cam-%H%M%S.mp4"), earlier(3 * 86400, "notes-%H%M%S.mkv")]
    alone = old[3].parent  # the folder of a day whose only file is an old segment ...
    other = kept[1].parent  # ... and one that holds other files too (the day of old[0])
    assert main(["run", "-i", str(clip), "-o", str(rec / "%Y-%m-%d" / "cam-%H%M%S.mkv"), "--segment", "1",
                 "--keep", "1h"]) == 0
    assert not any(path.exists() for path in old) and all(path.exists() for path in kept)
    assert not alone.exists() and other.is_dir() and rec.is_dir()
    recorded = sorted(rec.glob(time.strftime("%Y-%m-%d") + "/cam-*.mkv"))
    assert len([path for path in recorded if path not in kept]) == 2  # this run's two segments
    for args, fragment in [(["--segment", "10", "--keep", "5"], "--keep must be at least one segment (10 s), got 5 s"),
                           (["--segment", "10", "--keep", "a week"], "--keep must be a duration > 0 such as 7d"),
                           (["--keep", "7d"], "--keep deletes old segments of a recording cut by --segment"),
                           (["--segment", "60", "--keep", "7d", "-o", str(tmp_path / "%b" / "%Y%m%d-%H%M%S.mkv")],
                            "--keep tells segments by the time in their names, which must be numbers"),
                           (["--segment", "60", "--keep", "7d", "-o", str(tmp_path / "cam-%H%M%S.mkv")],
                            "needs %Y, %m, %d (or %j), %H, %M and %S")]:  # a name with no date: all of 1900
        output = [] if "-o" in args else ["-o", str(tmp_path / "%Y%m%d-%H%M%S.mkv")]
        assert_one_line_error(run_cli("run", "-i", str(clip), *output, *args), fragment)


def test_keep_on_a_full_disk_deletes_the_oldest_segments_and_records_on(model_cache, tmp_path, small_disk):
    """With --keep, a disk full before the window is costs the oldest segments, not the recording (without it, a full
    disk stops the run: a 24/7 recorder that stops recording). 400 frames of noise (incompressible, 8 MB masked) in
    1 s segments on a 5 MB disk: every frame masked, exit 0, the newest segments on disk hold the last frames in
    order, said once."""
    from fractions import Fraction

    import av

    from realtime.outputs.segments import segment_start
    from tests.realtime.test_cli_models import run_cli

    clip, rng = tmp_path / "noise.mkv", np.random.default_rng(7)
    with av.open(str(clip), "w") as container:  # frame k: noise with a flat 64x64 corner at level k mod 256
        stream = container.add_stream("ffv1", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 160, 120, "bgr0"
        for k in range(400):
            pixels = rng.integers(0, 256, (120, 160, 3), np.uint8)
            pixels[:64, :64] = k % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="bgr24").reformat(format="bgr0")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    pattern, meta = str(small_disk / "rec" / "%Y-%m-%d" / "%H%M%S.mkv"), small_disk / "m.jsonl"
    result = run_cli("run", "-i", str(clip), "-o", pattern, "--segment", "1", "--keep", "1d", "--metadata", str(meta))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for path in sorted(small_disk.glob("m-*.jsonl")) for line in path.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(400))  # the metadata's segments, on the same disk
    assert result.stderr.count("is nearly full: deleted its oldest segment") == 1
    files = sorted(small_disk.glob("rec/*/*.mkv"), key=lambda path: segment_start(pattern, str(path)))
    numbers = []
    for path in files:
        capture = cv2.VideoCapture(str(path))
        while (frame := capture.read()[1]) is not None:
            numbers.append(float(frame[16:48, 16:48].mean()))  # within a level (YUV 4:2:0 and back)
    off = (np.array(numbers) - np.arange(400 - len(numbers), 400) + 128) % 256 - 128  # from the newest frames
    assert 30 <= len(numbers) < 180 and np.abs(off).max() <= 1.0
