"""``-o -``, ``--metadata -`` and ``--stats -``: a run's video or JSON on standard output, for a player, ffmpeg or jq
(``-o -`` used to write a folder of PNGs named ``-``, ``--metadata -`` a file named ``-``)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

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
    stdout = tmp_path / "stdout.mkv"
    stdout.write_bytes(run.stdout)
    with av.open(str(stdout)) as container:
        assert container.format.name.startswith("matroska") and container.streams.video[0].codec_context.name == "h264"
        decoded = [(frame.to_ndarray(format="bgr24"), float(frame.time)) for frame in container.decode(video=0)]
    expected = [cv2.imread(str(path)) for path in sorted(frames.glob("*.png"))]
    source_ts = [json.loads(line)["source_ts"] for line in meta.read_text().splitlines()]
    assert len(decoded) == len(expected) == len(source_ts) == 30
    for index, (image, _) in enumerate(decoded):  # H.264 at crf 20 on this small clip: 36-40 dB, as in an MP4
        assert _psnr(image, expected[index]) > max(34, _psnr(image, expected[(index + 5) % 30])), index
    assert [round(at, 3) for _, at in decoded] == [round(ts - source_ts[0], 3) for ts in source_ts]
    masked = cv2.VideoCapture(str(MEDIA / "carphone_pristine.mp4")).read()[1]
    assert _psnr(decoded[0][0], masked) < 30  # the person blurred: not the clip as it was


def test_a_camera_on_stdout_streams_as_it_comes_and_stops_when_the_reader_goes(model_cache, tmp_path):
    """A live camera piped to a player: its first frames arrive while the run goes on (each frame in the pipe as it
    is encoded, not at the end); when the player closes, the run stops cleanly (exit 0, one warning, no
    traceback) and its recording beside is finalised with every frame it wrote."""
    need_shared()
    camera = MjpegServer(MEDIA / "one-by-one-person-detection.mp4", fps=10)
    recording, stats = tmp_path / "rec.mp4", tmp_path / "s.json"
    process = subprocess.Popen([*COMMAND, "-i", camera.url, "-o", "-", "-o", str(recording), "--stats", str(stats)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with av.open(process.stdout, format="matroska") as container:
            frames = [frame.to_ndarray(format="bgr24") for _, frame in zip(range(5), container.decode(video=0),
                                                                               strict=False)]
        assert len(frames) == 5 and frames[0].shape == (432, 768, 3)
        assert process.poll() is None  # still running: a stream, not a file handed over at the end
        process.stdout.close()  # the player is closed
        stderr = process.communicate(timeout=60)[1].decode()
    finally:
        process.kill()
        camera.stop()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "the reader of standard output went away (broken pipe)" in stderr
    written = json.loads(stats.read_text())["frames"]
    with av.open(str(recording)) as container:
        assert sum(1 for _ in container.decode(video=0)) == written >= 5


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
