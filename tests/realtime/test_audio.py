"""The source's sound in the masked video (`run --audio copy`), on the shared clip with an AAC track and on clips
with a camera's G.711 sound made here; left out, and said so, by default."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from realtime.cli import main
from tests.common import MEDIA, need_shared
from tests.realtime.test_cli_models import assert_one_line_error, run_cli

CLIP = "car-detection.mp4"  # 768x432 at 12.5 fps, AAC 48 kHz


def _frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    return sum(1 for _ in iter(lambda: capture.read()[0], False))


def _audio(path):
    """(codec, seconds of sound, the packets' bytes) of the first audio track; None without one."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        packets = [bytes(p) for p in container.demux(stream) if p.size]
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, samples / stream.codec_context.sample_rate, packets


def _lag(path) -> float:
    """How far the first video frame comes after the first sound, in seconds, as a player decodes them."""
    with av.open(str(path)) as container:
        video = next(container.decode(video=0)).time
    with av.open(str(path)) as container:
        audio = next(container.decode(audio=0)).time
    return float(video) - float(audio)


def test_audio_is_left_out_by_default_and_said_so(model_cache, tmp_path):
    need_shared()
    result = run_cli("run", "-i", str(MEDIA / CLIP), "-o", str(tmp_path / "o.mp4"), "--max-frames", "10")
    assert result.returncode == 0, result.stderr
    assert "has sound (aac)" in result.stderr and "--audio copy keeps it" in result.stderr
    assert _audio(tmp_path / "o.mp4") is None and _frames(tmp_path / "o.mp4") == 10


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".ts", ".mkv", ".avi"])
def test_audio_copy_puts_the_sources_packets_in_cut_to_the_video(model_cache, tmp_path, suffix):
    """50 frames at 12.5 fps: 4 s of the source's AAC, its packets as they were (not encoded again), in sync with the
    video as in the source (before: in an MP4 the video came 160 ms after its sound, H.264's reorder delay)."""
    need_shared()
    out = tmp_path / f"o{suffix}"
    assert main(["run", "-i", str(MEDIA / CLIP), "-o", str(out), "--max-frames", "50", "--audio", "copy"]) == 0
    codec, seconds, packets = _audio(out)
    source_packets = _audio(MEDIA / CLIP)[2]
    assert codec == "aac" and abs(seconds - 4.0) < 0.05
    if suffix == ".ts":  # MPEG-TS carries each AAC packet behind its 7-byte ADTS header
        assert all(packet[:2] == b"\xff\xf1" for packet in packets)
        packets = [packet[7:] for packet in packets]
    assert packets == source_packets[:len(packets)]
    assert _frames(out) == 50
    if suffix not in (".avi", ".ts"):  # when the recording began, kept through the remux (AVI, MPEG-TS: no such field)
        with av.open(str(out)) as container:
            began = datetime.fromisoformat(container.metadata["creation_time"].replace("Z", "+00:00")).timestamp()
        assert time.time() - 300 < began <= time.time()
    assert abs(_lag(out) - _lag(MEDIA / CLIP)) < 0.005
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file left


def test_audio_copy_goes_into_the_video_file_among_several_outputs(model_cache, tmp_path):
    """-o o.mkv -o frames/ --audio copy: the sound goes where it can be held; the image folder is written beside."""
    need_shared()
    out, frames = tmp_path / "o.mkv", tmp_path / "frames"
    assert main(["run", "-i", str(MEDIA / CLIP), "-o", str(out), "-o", f"{frames}/", "--max-frames", "25",
                 "--audio", "copy"]) == 0
    codec, seconds, _ = _audio(out)
    assert codec == "aac" and abs(seconds - 2.0) < 0.05 and _frames(out) == 25
    assert len(list(frames.glob("*.png"))) == 25


def _camera_clip(path, codec, frames=20, size_wh=(128, 96)):
    """A clip as an IP camera records it: MPEG-4 video at 10 fps (noise: it compresses badly) and 2 s of 8 kHz mono
    G.711 sound."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        (video.width, video.height), video.pix_fmt = size_wh, "yuv420p"
        audio = out.add_stream(codec, rate=8000)
        audio.layout = "mono"
        for _ in range(frames):
            noise = rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(noise, format="bgr24")
            for packet in video.encode(frame):
                out.mux(packet)
        tone = (np.sin(np.arange(16000) * 0.3) * 8000).astype(np.int16).reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        sound.sample_rate = 8000
        for packet in [*audio.encode(sound), *audio.encode(None), *video.encode(None)]:
            out.mux(packet)


@pytest.mark.parametrize("codec", ["pcm_mulaw", "pcm_alaw"])
def test_a_camera_g711_track_goes_into_an_mp4_as_aac(model_cache, tmp_path, codec):
    """An MP4 cannot hold G.711: the sound is encoded to AAC rather than lost."""
    source = tmp_path / "camera.avi"
    _camera_clip(source, codec)
    out = tmp_path / "masked.mp4"
    assert main(["run", "-i", str(source), "-o", str(out), "--audio", "copy"]) == 0
    name, seconds, _ = _audio(out)
    assert name == "aac" and 1.95 < seconds < 2.3  # 2 s, and the AAC encoder's priming and padding
    assert _frames(out) == 20


def _flash_and_beep(path, codec, times=None, flash=8):
    """A clip to check sync with: MPEG-4 video, black but for the white frame ``flash``, and 8 kHz sound, silent but
    for a beep from that frame's time. ``times``: each frame's, in seconds (default: 20 frames at 10 fps)."""
    times = [index / 10 for index in range(20)] if times is None else times
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        audio = out.add_stream(codec, rate=8000)
        audio.layout = "mono"
        for index, at in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((96, 128, 3), 255 if index == flash else 0, np.uint8),
                                               format="bgr24")
            frame.pts, frame.time_base = round(at * 1000), Fraction(1, 1000)
            for packet in video.encode(frame):
                out.mux(packet)
        sound = np.zeros((1, round((times[-1] + 0.2) * 8000)), np.int16)
        beep = round(times[flash] * 8000)
        sound[0, beep:beep + 800] = (np.sin(np.arange(800) * 0.5) * 16000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(sound, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 8000, 0, Fraction(1, 8000)  # AAC's priming comes before 0
        for packet in [*audio.encode(frame), *audio.encode(None), *video.encode(None)]:
            out.mux(packet)


def _flash_to_beep_s(path) -> float:
    """From the white frame to the beep's first loud sample, in seconds, as a player decodes them."""
    with av.open(str(path)) as container:
        flash = next(float(f.time) for f in container.decode(video=0) if f.to_ndarray(format="gray").mean() > 128)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples = np.abs(frame.to_ndarray().astype(np.float64)).max(axis=0)
            loud = np.flatnonzero(samples > 0.3 * (32768 if frame.format.name.startswith("s16") else 1))
            if loud.size:
                return float(frame.time) + loud[0] / frame.sample_rate - flash
    raise AssertionError(f"no beep in {path}")


def test_a_camera_g711_track_encoded_to_aac_stays_in_sync(model_cache, tmp_path):
    """The flash and the beep together in the source are together in the masked MP4, whose H.264 shows its first
    frame after the reorder delay and whose AAC starts with the encoder's priming (before: the beep came 200 ms early)."""
    source, out = tmp_path / "camera.avi", tmp_path / "masked.mp4"
    _flash_and_beep(source, "pcm_mulaw")
    assert main(["run", "-i", str(source), "-o", str(out), "--mode", "fill", "--audio", "copy"]) == 0
    assert abs(_flash_to_beep_s(source)) < 0.002
    assert abs(_flash_to_beep_s(out)) < 0.01


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_phone_clip_of_varying_frame_rate_keeps_its_timing_and_its_sound_in_sync(model_cache, tmp_path, suffix):
    """30 fps for a second, then 10 fps (a phone in dim light): each frame is written at its own time, so the flash
    at 1.5 s is with its beep (before: frames at n / the average rate, the flash 0.6 s late)."""
    times = [index / 30 for index in range(30)] + [1.0 + index / 10 for index in range(20)]
    source, out = tmp_path / "phone.mp4", tmp_path / f"masked{suffix}"
    _flash_and_beep(source, "aac", times, flash=35)
    assert main(["run", "-i", str(source), "-o", str(out), "--mode", "fill", "--audio", "copy"]) == 0
    assert abs(_flash_to_beep_s(source)) < 0.002
    assert abs(_flash_to_beep_s(out)) < 0.01
    with av.open(str(out)) as container:
        played = [float(frame.time) for frame in container.decode(video=0)]
    assert [round(at - played[0], 3) for at in played] == [round(at, 3) for at in times]


@pytest.mark.parametrize("args,fragments", [
    (["-i", "synthetic:64x48@10?frames=3", "-o", "{d}/o.mp4"], ["--audio copy takes the sound of a video file source"]),
    (["-i", str(MEDIA / CLIP), "-o", "{d}/frames/"], ["--audio copy writes sound into a video file output"]),
], ids=["no-sound-to-give", "output-holds-no-sound"])
def test_audio_copy_where_it_cannot_be_is_a_one_line_error(model_cache, tmp_path, args, fragments):
    need_shared()
    result = run_cli("run", *[a.format(d=tmp_path) for a in args], "--audio", "copy")
    assert_one_line_error(result, *fragments)


def test_audio_that_does_not_fit_on_the_disk_leaves_the_video_as_it_was(model_cache, tmp_path, small_disk):
    """Copying the sound rewrites the file beside it: on a disk without room for that, the video stays, silent,
    every frame playable, and the run says so (exit 2)."""
    source = tmp_path / "camera.avi"
    _camera_clip(source, "pcm_mulaw", frames=100, size_wh=(320, 240))
    assert main(["run", "-i", str(source), "-o", str(tmp_path / "probe.mp4"), "--mode", "fill"]) == 0
    size = (tmp_path / "probe.mp4").stat().st_size  # ~2.5 MB of noise
    keep = (1 << 20) + 2 * 320 * 240 * 3 + (200 << 10)  # what the video sink keeps free to finalise, and a margin
    (small_disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - size - keep))
    result = run_cli("run", "-i", str(source), "-o", str(small_disk / "o.mp4"), "--mode", "fill", "--audio", "copy")
    last = result.stderr.strip().splitlines()[-1]  # after the run's latency table
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert last.startswith("realtime-mask: error: could not copy the audio") and "written without it" in last, last
    assert _audio(small_disk / "o.mp4") is None and _frames(small_disk / "o.mp4") == 100
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "o.mp4"]


def test_audio_copy_from_a_file_on_a_web_server(model_cache, tmp_path):
    need_shared()
    from tests.common import WebFileServer

    server = WebFileServer(MEDIA / CLIP)
    try:
        assert main(["run", "-i", server.url, "-o", str(tmp_path / "o.mkv"), "--max-frames", "25", "--audio", "copy"]) == 0
    finally:
        server.stop()
    codec, seconds, _ = _audio(tmp_path / "o.mkv")
    assert codec == "aac" and abs(seconds - 2.0) < 0.05 and _frames(tmp_path / "o.mkv") == 25


def test_audio_copy_into_webm_is_opus_in_sync(model_cache, tmp_path):
    """WebM takes Opus (or Vorbis) only: the source's AAC, and a camera's 8 kHz G.711 resampled to Opus's 48 kHz, are
    encoded to Opus — as long as the video, and the flash and the beep together in the source together in it."""
    need_shared()
    out = tmp_path / "o.webm"
    assert main(["run", "-i", str(MEDIA / CLIP), "-o", str(out), "--max-frames", "50", "--audio", "copy"]) == 0
    codec, seconds, _ = _audio(out)
    assert codec == "opus" and abs(seconds - 4.0) < 0.05 and _frames(out) == 50
    source, synced = tmp_path / "camera.avi", tmp_path / "masked.webm"
    _flash_and_beep(source, "pcm_mulaw")
    assert main(["run", "-i", str(source), "-o", str(synced), "--mode", "fill", "--audio", "copy"]) == 0
    assert _audio(synced)[0] == "opus" and abs(_flash_to_beep_s(synced)) < 0.01


def _tagged_phone_clip(path, tags):
    """A phone's clip: H.264 and AAC in an MP4 whose container and tracks carry where and by whom it was shot."""
    with av.open(str(path), "w") as out:
        out.metadata.update(tags)
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.metadata["handler_name"] = tags["artist"]
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for image in _clip_frames_small(10):
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        sound.sample_rate = 16000
        for packet in [*audio.encode(sound), *audio.encode(None), *video.encode(None)]:
            out.mux(packet)


def _clip_frames_small(count):
    capture = cv2.VideoCapture(str(MEDIA / "carphone_pristine.mp4"))
    return [cv2.resize(capture.read()[1], (160, 120)) for _ in range(count)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_where_and_by_whom_a_clip_was_shot_does_not_reach_the_masked_video(model_cache, tmp_path, suffix):
    """A phone writes the place (GPS), the owner and the device into its clips: personal data the masked copy must
    not carry, even with the sound copied in. Looked for in every byte of the output, not only in its tags."""
    need_shared()
    tags = {"location": "+48.8584+002.2945/", "title": "Alice at home", "artist": "Alice Example",
            "comment": "serial XJ-1234"}
    source, out = tmp_path / "phone.mp4", tmp_path / f"masked{suffix}"
    _tagged_phone_clip(source, tags)
    assert av.open(str(source)).metadata["location"] == tags["location"]  # the tags are there to leak
    assert main(["run", "-i", str(source), "-o", str(out), "--audio", "copy"]) == 0
    written = out.read_bytes()
    assert _audio(out)[1] > 0.9 and _frames(out) == 10
    for value in tags.values():
        for text in (value, value.split()[-1], value[:8]):
            assert text.encode() not in written and text.encode("utf-16-be") not in written, text


@pytest.mark.parametrize("codec", ["aac", "pcm_mulaw"], ids=["aac-copied", "g711-encoded"])
def test_audio_copy_into_an_hls_output_goes_into_its_segments_in_sync(model_cache, tmp_path, codec):
    """-o live.m3u8 --audio copy: the segments, which cannot be rewritten at the end as a file is, get the sound as
    the frames are written (AAC as it is, a camera's G.711 encoded to AAC), in sync: the flash with its beep, the
    sound as long as the video (before 2026-12-01: refused, "writes sound into a video file output")."""
    source = tmp_path / ("phone.mp4" if codec == "aac" else "camera.avi")
    _flash_and_beep(source, codec, [index / 10 for index in range(50)], flash=28)  # 5 s: three segments
    (tmp_path / "www").mkdir()
    out = tmp_path / "www" / "live.m3u8"
    assert main(["run", "-i", str(source), "-o", str(out), "--mode", "fill", "--audio", "copy"]) == 0
    assert abs(_flash_to_beep_s(source)) < 0.002
    assert abs(_flash_to_beep_s(out)) < 0.01
    name, seconds, packets = _audio(out)
    assert name == "aac" and abs(seconds - 5.0) < 0.15 and _frames(out) == 50
    if codec == "aac":  # its packets as they were (from the first video frame's time), each behind the 7-byte ADTS
        copied, original = [packet[7:] for packet in packets], _audio(source)[2]  # header MPEG-TS carries AAC with
        first = original.index(copied[0])
        assert copied == original[first:first + len(copied)] and first <= 1
    segments = sorted((tmp_path / "www").glob("*.ts"))
    assert len(segments) == 3 and all(abs(_audio(segment)[1] - 2.0) < 0.15 for segment in segments[:2])  # 2 s each
