"""``-o -``, ``--metadata -`` and ``--stats -``: a run's video or JSON on standard output, for a player, ffmpeg or jq
(``-o -`` used to write a folder of PNGs named ``-``, ``--metadata -`` a file named ``-``)."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time

import av
import cv2
import numpy as np

from tests.common import MEDIA, MjpegServer, need_shared
from tests.realtime.test_cli_models import assert_one_line_error

COMMAND = [sys.executable, "-m", "realtime.cli", "run"]


def _psnr(a, b):
    return cv2.PSNR(np.ascontiguousarray(a), np.ascontiguousarray(b))


def test_the_video_on_stdout_is_the_masked_clip_at_its_own_times(model_cache, tmp_path):
    """Read from the pipe as ffmpeg or a player would: every frame, masked as the lossless PNGs of the same run show
    it, each at its source time (Matroska H.264)."""
    need_shared()
    frames, meta = tmp_path / "frames", tmp_path / "m.jsonl"
    run = subprocess.run([*COMMAND, "-i", str(MEDIA / "carphone_pristine.mp4"), "-o", "-", "-o", f"{frames}/",
                          "--metadata", str(meta), "--max-frames", "30"], capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    stdout = tmp_path / "stdout.ts"
    stdout.write_bytes(run.stdout)
    with av.open(str(stdout)) as container:
        assert container.format.name == "mpegts" and container.streams.video[0].codec_context.name == "h264"
        decoded = [(frame.to_ndarray(format="bgr24"), float(frame.time)) for frame in container.decode(video=0)]
    expected = [cv2.imread(str(path)) for path in sorted(frames.glob("*.png"))]
    source_ts = [json.loads(line)["source_ts"] for line in meta.read_text().splitlines()]
    assert len(decoded) == len(expected) == len(source_ts) == 30
    for index, (image, _) in enumerate(decoded):  # H.264 at crf 20 on this small clip: 36-40 dB, as in an MP4
        assert _psnr(image, expected[index]) > max(34, _psnr(image, expected[(index + 5) % 30])), index
    starts_at = decoded[0][1]  # MPEG-TS starts its clock at 1.4 s
    assert [round(at - starts_at, 3) for _, at in decoded] == [round(ts - source_ts[0], 3) for ts in source_ts]
    masked = cv2.VideoCapture(str(MEDIA / "carphone_pristine.mp4")).read()[1]
    assert _psnr(decoded[0][0], masked) < 30  # the person blurred: not the clip as it was


def _wait_still(count, settle_s=1.5, limit_s=30.0):
    """Wait until ``count()`` has not changed for ``settle_s``; its last value."""
    deadline, last, since = time.monotonic() + limit_s, count(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < settle_s:
        time.sleep(0.1)
        if (now := count()) != last:
            last, since = now, time.monotonic()
    return last


def test_a_camera_on_stdout_streams_each_frame_as_it_comes_and_stops_when_the_reader_goes(model_cache, tmp_path):
    """A live camera piped to a player: every frame written is in the pipe at once, not held by the encoder (x264's
    look-ahead and B-frames hold a dozen or more) or the muxer (a cluster of 32 kB), which a camera that stalls
    would leave unseen. When the player closes, the run stops cleanly (exit 0, one warning, no traceback) and its
    recording beside is finalised with every frame it wrote."""
    need_shared()
    camera = MjpegServer(MEDIA / "carphone_pristine.mp4", fps=10)  # small frames: many to a 32 kB cluster
    recording, stats, meta = tmp_path / "rec.mp4", tmp_path / "s.json", tmp_path / "m.jsonl"
    process = subprocess.Popen([*COMMAND, "-i", camera.url, "-o", "-", "-o", str(recording), "--stats", str(stats),
                                "--metadata", str(meta)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received, done = bytearray(), threading.Event()

    def read():  # as a player does, until it is closed
        while not done.is_set():
            if select.select([process.stdout], [], [], 0.1)[0]:
                if not (chunk := os.read(process.stdout.fileno(), 65536)):
                    return
                received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        lines = lambda: len(meta.read_text().splitlines()) if meta.exists() else 0  # noqa: E731
        while lines() < 20 and process.poll() is None:
            time.sleep(0.1)
        camera.paused.set()  # the camera stalls: what was written must be in the pipe
        written = _wait_still(lines)
        _wait_still(lambda: len(received))
        with av.open(io.BytesIO(bytes(received)), format="mpegts") as container:
            piped = sum(1 for _ in container.decode(video=0))
        assert process.poll() is None and written >= 20 and piped == written
        done.set()
        reader.join()
        process.stdout.close()  # the player is closed ...
        camera.paused.clear()  # ... and the next frame meets the closed pipe
        stderr = process.communicate(timeout=60)[1].decode()
    finally:
        process.kill()
        camera.stop()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "the reader of standard output went away (broken pipe)" in stderr
    frames = json.loads(stats.read_text())["frames"]
    with av.open(str(recording)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames >= written


def test_metadata_and_stats_on_stdout_are_json_and_nothing_else(model_cache):
    need_shared()
    clip = str(MEDIA / "carphone_pristine.mp4")
    lines = subprocess.run([*COMMAND, "-i", clip, "-o", "null", "--max-frames", "5", "--metadata", "-"],
                           capture_output=True, text=True, timeout=300).stdout.splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2, 3, 4]
    stats = subprocess.run([*COMMAND, "-i", clip, "-o", "null", "--max-frames", "5", "--stats", "-"],
                           capture_output=True, text=True, timeout=300).stdout
    assert json.loads(stats)["frames"] == 5
    head = subprocess.run(f"{' '.join(COMMAND)} -i {clip} -o null --metadata - | head -n 2", shell=True,
                          capture_output=True, text=True, timeout=300)  # jq, head: a reader that goes early
    assert len(head.stdout.splitlines()) == 2 and "Traceback" not in head.stderr and "Exception" not in head.stderr
    assert "the reader of --metadata's standard output went away" in head.stderr


def test_stdout_refuses_a_terminal_and_a_second_writer(tmp_path):
    need_shared()
    clip = str(MEDIA / "carphone_pristine.mp4")
    both = subprocess.run([*COMMAND, "-i", clip, "-o", "-", "--metadata", "-"], capture_output=True, text=True)
    assert_one_line_error(both, "--output - and --metadata - would both write to standard output", "a file")
    terminal, other_end = pty.openpty()
    try:
        typed = subprocess.run([*COMMAND, "-i", clip, "-o", "-"], stdout=other_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(terminal)
        os.close(other_end)
    assert_one_line_error(typed, "standard output, which is a terminal", "-o - | ffplay -")
