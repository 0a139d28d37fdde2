"""``realtime-mask run`` bad inputs: one line on stderr, exit code 2, no traceback, nothing half-written."""

from __future__ import annotations

import hashlib
import shutil

import cv2
import pytest

from engines.errors import ConfigError
from realtime.capture.files import read_frames
from tests.common import MEDIA, need_shared
from tests.realtime.test_cli_models import assert_one_line_error, run_cli

CASES = {
    "missing-file": (["--source", "{d}/missing.mp4", "--output", "{d}/o.mp4"], ["missing.mp4 does not exist"]),
    "unknown-scheme": (["--source", "foo://cam/1", "--output", "{d}/o.mp4"], ["unknown source scheme 'foo://'"]),
    "unreadable-stream": (["--source", "rtsp://127.0.0.1:9/none", "--open-timeout", "1", "--output", "{d}/o.mp4"],
                          ["cannot open rtsp://127.0.0.1:9/none within 1 s"]),
    "credentials-redacted": (["--source", "rtsp://admin:hunter2@127.0.0.1:9/x", "--open-timeout", "1",
                              "--output", "{d}/o.mp4"], ["rtsp://***@127.0.0.1:9/x"]),
    "bad-mode": (["--source", "{clip}", "--mode", "sparkle", "--output", "{d}/o.mp4"], ["invalid choice: 'sparkle'"]),
    "bad-threshold": (["--source", "{clip}", "--threshold", "1.5", "--output", "{d}/o.mp4"], ["threshold must be"]),
    "bad-block": (["--source", "{clip}", "--mode", "pixelate", "--block", "1", "--output", "{d}/o.mp4"],
                  ["pixelate block must be 2..512"]),
    "bad-color": (["--source", "{clip}", "--mode", "fill", "--color", "red", "--output", "{d}/o.mp4"], ["colour must be"]),
    "bad-synthetic": (["--source", "synthetic:big", "--output", "{d}/o.mp4"], ["synthetic:WIDTHxHEIGHT@FPS"]),
    "unwritable-output": (["--source", "{clip}", "--output", "{d}/no/such/o.mp4"], ["folder", "does not exist"]),
    "unknown-output": (["--source", "{clip}", "--output", "{d}/o.xyz"], ["cannot tell what output"]),
    "replace-without-background": (["--source", "{clip}", "--mode", "replace", "--output", "{d}/o.mp4"],
                                   ["mode replace needs a background"]),
    "replace-missing-background": (["--source", "{clip}", "--mode", "replace", "--background", "{d}/none.png",
                                    "--output", "{d}/o.mp4"], ["background", "none.png does not exist"]),
    "cutout-bgra-to-mp4": (["--source", "{clip}", "--mode", "cutout", "--output", "{d}/o.mp4"], ["BGRA"]),
    "cutout-bgra-to-mp4-beside-a-new-folder": (["--source", "{clip}", "--mode", "cutout", "--output",
                                                "{d}/frames/cut/", "--output", "{d}/o.mp4"], ["BGRA", "o.mp4"]),
    "option-of-other-mode": (["--source", "{clip}", "--mode", "blur", "--opacity", "0.3", "--output", "{d}/o.mp4"],
                             ["--opacity is an option of mode overlay"]),
    "positional-source": (["{clip}", "{d}/o.mp4"], ["unrecognized arguments", "--source S --output O"]),
    "two-sources-one-output": (["-i", "{clip}", "-i", "{clip}", "-o", "{d}/o.mp4"],
                               ["2 sources need 2 outputs", "{stream} in its name"]),
    "two-sources-one-mask-archive": (["-i", "{clip}", "-i", "{clip}", "-o", "null", "--save-masks", "{d}/m.npz"],
                                     ["2 sources need 2 mask archives"]),
    "live-and-file-sources": (["-i", "{clip}", "-i", "synthetic:64x64@10?live=1", "-o", "null"],
                              ["live and file sources cannot share a pipeline"]),
    "missing-config": (["--config", "{d}/nope.toml"], ["cannot read config"]),
    "preview-port-out-of-range": (["--source", "{clip}", "--output", "http://127.0.0.1:99999/"],
                                  ["port 0..65535", "99999"]),
    "rtsp-port-out-of-range": (["--source", "{clip}", "--output", "rtsp://127.0.0.1:70000/x"], ["port 1..65535"]),
    "mask-archive-not-npz": (["--source", "{clip}", "--output", "null", "--save-masks", "{d}/m.txt"],
                             ["m.txt must end in .npz"]),
    "missing-camera": (["--source", "7", "--output", "{d}/o.mp4"], ["no camera at /dev/video7", "give another index"]),
    "device-not-a-video": (["--source", "/dev/null", "--output", "{d}/o.mp4"], ["/dev/null is not a regular file"]),
    "replace-undecodable-background": (["--source", "{clip}", "--mode", "replace", "--background", "{d}/junk.png",
                                        "--output", "{d}/o.mp4"], ["cannot read background", "junk.png"]),
    "nan-mask-budget": (["--source", "{clip}", "--mask-budget", "nan", "--output", "{d}/o.mp4"],
                        ["mask budget must be a number of ms > 0, got nan"]),  # nan would never count a mask late
    "zero-open-timeout": (["--source", "{clip}", "--open-timeout", "0", "--output", "{d}/o.mp4"],
                          ["--open-timeout must be a number of seconds > 0"]),
    "zero-batch": (["--source", "{clip}", "--batch", "0", "--output", "{d}/o.mp4"], ["--batch must be >= 1, got 0"]),
    "live-file": (["--source", "{clip}", "--live", "--output", "{d}/o.mp4"],
                  ["--live is for a stream piped in (-i -), not file://", "files every frame (--realtime paces them)"]),
    # an unset variable ("-i $CAMERA", "-o $OUT"): before, the current folder's images were the source, and the
    # output was a PNG per frame written into the current folder
    "empty-source": (["--source", "", "--output", "{d}/o.mp4"], ["the source is empty; give video file"]),
    "empty-output": (["--source", "{clip}", "--output", " "], ["the output is empty; give a video file"]),
    # several streams, all down: the error at once, without the warnings a stream down among live ones gets
    "every-stream-down": (["-i", "rtsp://127.0.0.1:9/a", "-i", "rtsp://127.0.0.1:9/b", "--open-timeout", "1",
                           "--output", "null"], ["cannot open rtsp://127.0.0.1:9/a within 1 s"]),
    "rtmp-output-server-down": (["--source", "{clip}", "--output", "rtmp://127.0.0.1:9/live/hunter2"],
                                ["cannot publish to rtmp://127.0.0.1:9/live/***: ", "check the address and the stream key"]),
    "rtmp-output-without-key": (["--source", "{clip}", "--output", "rtmp://127.0.0.1:9/live"],
                                ["RTMP output needs rtmp://SERVER/APP/STREAM_KEY, got rtmp://127.0.0.1:9/***"]),
    "srt-source": (["--source", "srt://127.0.0.1:9000?passphrase=hunter2", "--output", "null"],
                   ["srt:// is not read directly", "-c copy -f mpegts - | realtime-mask run -i - --live"]),
    "srt-output": (["--source", "{clip}", "--output", "srt://127.0.0.1:9000"],
                   ["srt:// is not written directly", "-o - | ffmpeg -i - -c copy -f mpegts 'srt://127.0.0.1:9000'"]),
    "one-image-of-a-video": (["--source", "{clip}", "--output", "{d}/o.jpg"],
                             ["{d}/o.jpg is one image, but", "has ", "--max-frames 1", "image folder ({d}/o/)"]),
    "one-image-of-a-live-source": (["--source", "synthetic:64x48@10?live=1", "--output", "{d}/o.jpg"],
                                   ["is live; give --max-frames 1"]),
    "cutout-bgra-to-jpg": (["--source", "{d}/photo.png", "--mode", "cutout", "--output", "{d}/o.jpg"],
                           ["BGRA", "image://{d}/o.jpg cannot hold", "a .png"]),
    "unwritable-file-uri-output": (["--source", "{clip}", "--output", "file://{d}/no/such/o.mp4"],
                                   ["cannot write {d}/no/such/o.mp4: folder {d}/no/such does not exist"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_run_bad_input(model_cache, tmp_path, name):
    need_shared()
    args, fragments = CASES[name]
    (tmp_path / "junk.png").write_text("not an image")
    if "photo.png" in " ".join(args):
        cv2.imwrite(str(tmp_path / "photo.png"), read_frames(MEDIA / "carphone_pristine.mp4", limit=1)[0])
    filled = [a.format(d=tmp_path, clip=MEDIA / "carphone_pristine.mp4") for a in args]
    result = run_cli("run", *filled)
    assert_one_line_error(result, *[fragment.replace("{d}", str(tmp_path)) for fragment in fragments])
    assert "hunter2" not in result.stderr
    assert not {p.name for p in tmp_path.iterdir()} - {"junk.png", "photo.png"}  # nothing made, not even a folder


def test_a_file_uri_output_is_the_video_file_it_names(model_cache, tmp_path):
    """``file://PATH``, the form every message names a video output by, is taken as an output too (before: its
    folder was looked for as "file:/...", which never exists)."""
    need_shared()
    import cv2

    from realtime.cli import main

    assert main(["run", "-i", str(MEDIA / "carphone_pristine.mp4"), "-o", f"file://{tmp_path}/o.mp4",
                 "--max-frames", "3"]) == 0
    assert cv2.VideoCapture(str(tmp_path / "o.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3


@pytest.mark.parametrize("command", [[], ["run"], ["masks"], ["models"], ["models", "export"], ["bench"],
                                     ["build-engine"], ["eval-people"]])
def test_every_help_page_renders(command, capsys):
    from realtime.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: realtime-mask" in capsys.readouterr().out


# A run never writes over what it reads, nor two outputs to one path (as root, even a read-only clip would be
# truncated: the video writer opens it before the reader has decoded more than a few frames).
OVERWRITES = {
    "output-is-source": (["run", "-i", "{d}/c.mp4", "-o", "{d}/c.mp4"],
                         ["--output", "would write over the source", "choose another"]),
    "output-is-source-by-link": (["run", "-i", "{d}/link.mp4", "-o", "{d}/c.mp4"], ["would write over the source", "link.mp4"]),
    "metadata-is-source": (["run", "-i", "{d}/c.mp4", "-o", "null", "--metadata", "{d}/c.mp4"], ["--metadata"]),
    "stats-is-output": (["run", "-i", "{d}/c.mp4", "-o", "{d}/o.mp4", "--stats", "{d}/o.mp4"],
                        ["--output and --stats both write", "give each its own path"]),
    "background-is-output": (["run", "-i", "{d}/c.mp4", "-o", "{d}/bg.mp4", "--mode", "replace", "--background",
                              "{d}/bg.mp4"], ["would write over the --background"]),
    "image-folder-in-place": (["run", "-i", "{d}/frames/*.png", "-o", "{d}/frames/%05d.png"],
                              ["would write over the folder of the source images"]),
    "two-streams-one-file": (["run", "-i", "{d}/c.mp4", "-i", "{d}/c.mp4", "-o", "{d}/o.mp4", "-o", "{d}/o.mp4"],
                             ["--output", "is given twice"]),
    "masks-out-is-source": (["masks", "{d}/c.mp4", "--out", "{d}/c.mp4"], ["--out", "would write over the source"]),
}


def _tree_digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_image_folder_output_may_sit_beside_a_source_video(model_cache, tmp_path):
    need_shared()
    shutil.copyfile(MEDIA / "carphone_pristine.mp4", tmp_path / "c.mp4")
    result = run_cli("run", "-i", str(tmp_path / "c.mp4"), "-o", f"{tmp_path}/", "--max-frames", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000.png", "000001.png", "c.mp4"]


@pytest.mark.parametrize("name", list(OVERWRITES))
def test_no_output_overwrites_an_input_or_another_output(model_cache, tmp_path, name):
    need_shared()
    import cv2

    shutil.copyfile(MEDIA / "carphone_pristine.mp4", tmp_path / "c.mp4")  # a copy: ../shared is never written
    (tmp_path / "link.mp4").symlink_to(tmp_path / "c.mp4")
    (tmp_path / "frames").mkdir()
    capture = cv2.VideoCapture(str(tmp_path / "c.mp4"))
    for index in range(2):
        cv2.imwrite(str(tmp_path / "frames" / f"{index:06d}.png"), capture.read()[1])
    capture.release()
    shutil.copyfile(tmp_path / "c.mp4", tmp_path / "bg.mp4")  # a video background
    before = _tree_digest(tmp_path)
    args, fragments = OVERWRITES[name]
    result = run_cli(*[a.format(d=tmp_path) for a in args])
    assert_one_line_error(result, *fragments)
    assert _tree_digest(tmp_path) == before  # nothing written, nothing truncated


@pytest.mark.parametrize("command", [
    ["run", "-i", "{d}/typo.mp4", "-o", "{d}/out.mp4", "--metadata", "{d}/meta.jsonl", "--save-masks", "{d}/masks.npz",
     "--stats", "{d}/stats.json"],
    ["run", "-i", "{d}/broken.mp4", "-o", "{d}/out.mp4", "--metadata", "{d}/meta.jsonl", "--save-masks",
     "{d}/masks.npz", "--stats", "{d}/stats.json"],
    ["masks", "{d}/broken.mp4", "--out", "{d}/masks.npz"]], ids=["run-source-missing", "run-source-broken", "masks"])
def test_a_run_that_fails_to_start_leaves_an_earlier_runs_outputs_as_they_were(model_cache, tmp_path, command):
    """A mistyped path or a camera that is down must not wipe yesterday's recording, metadata and masks."""
    need_shared()
    source = str(MEDIA / "carphone_pristine.mp4")
    assert run_cli("run", "-i", source, "-o", f"{tmp_path}/out.mp4", "--metadata", f"{tmp_path}/meta.jsonl",
                   "--save-masks", f"{tmp_path}/masks.npz", "--stats", f"{tmp_path}/stats.json",
                   "--max-frames", "3").returncode == 0
    (tmp_path / "broken.mp4").write_bytes((MEDIA / "carphone_pristine.mp4").read_bytes()[:3000])
    before = _tree_digest(tmp_path)
    result = run_cli(*[a.format(d=tmp_path) for a in command])
    assert_one_line_error(result, "broken.mp4" if "broken" in " ".join(command) else "typo.mp4")
    assert _tree_digest(tmp_path) == before


CONFIG_CASES = {
    "string-for-integer": ('mode = "pixelate"\nblock = "big"\n', ["block must be an integer, got 'big'"]),
    "string-for-switch": ('privacy = "no"\n', ["privacy must be true or false, got 'no'"]),  # "no" must not mean on
    "float-for-integer": ("max_frames = 2.5\n", ["max_frames must be an integer, got 2.5"]),
    "unknown-choice": ('mode = "sparkle"\n', ["mode must be one of blur,"]),
    "empty-source-list": ("source = []\n", ["source must be a string or a list of strings"]),
    "not-text": (None, ["is not a text file", "give a TOML file"]),
}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_config_values_are_checked_like_flags(tmp_path, name):
    need_shared()
    body, fragments = CONFIG_CASES[name]
    config = tmp_path / "run.toml"
    if body is None:
        shutil.copyfile(MEDIA / "carphone_pristine.mp4", config)  # a video given as the config
    else:
        config.write_text(f'source = "{MEDIA / "carphone_pristine.mp4"}"\noutput = "{tmp_path / "o.mp4"}"\n' + body
                          if "source" not in body else body + f'output = "{tmp_path / "o.mp4"}"\n')
    result = run_cli("run", "--config", str(config))
    assert_one_line_error(result, f"config {config}", *fragments)
    assert not (tmp_path / "o.mp4").exists()


def test_a_duration_in_a_config_is_a_number_of_seconds_or_a_string(tmp_path):
    """`keep = 604800` in a config was refused ("must be a string") while `--keep 604800` worked; now it is seconds
    there too, as `keep = "7d"` is a week. A switch's true is still no duration."""
    from realtime.cli import build_parser, parse_with_config
    from realtime.outputs.segments import parse_keep

    config = tmp_path / "run.toml"
    for body, seconds in [("keep = 604800\n", 604800.0), ("keep = 90.5\n", 90.5), ('keep = "7d"\n', 604800.0)]:
        config.write_text('source = "in.mp4"\nsegment = 3600\n' + body)
        assert parse_keep(parse_with_config(build_parser(), ["run", "--config", str(config)]).keep) == seconds
    config.write_text('source = "in.mp4"\nsegment = 3600\nkeep = true\n')
    with pytest.raises(ConfigError, match="keep must be a string, got True"):
        parse_with_config(build_parser(), ["run", "--config", str(config)])


def test_a_video_file_to_a_watched_output_plays_at_its_own_pace(model_cache, tmp_path, engine):
    """A clip sent to a browser preview (a window, an RTSP or RTMP stream) went through as fast as it decoded: its
    4 s in well under 2 s of fast-forward for whoever watched, and the run over before a browser was open. Now it
    plays at its frame rate, said once; --no-realtime, or outputs nobody watches, go as fast as they can."""
    need_shared()
    import json

    from realtime.capture import SourceOptions
    from realtime.pipeline import Pipeline
    from tests.common import free_port

    clip, preview, meta = str(MEDIA / "carphone_pristine.mp4"), f"http://127.0.0.1:{free_port()}/", tmp_path / "m.jsonl"
    paced = run_cli("run", "-i", clip, "-o", preview, "--max-frames", "45", "--metadata", str(meta))
    assert paced.returncode == 0, paced.stderr
    assert [line for line in paced.stderr.splitlines() if "WARNING" in line] == [
        "realtime-mask: WARNING: the source plays at its own frame rate for the browser preview, as in a player "
        "(--no-realtime: as fast as it decodes)"]
    captured = [json.loads(line)["capture_ts"] for line in meta.read_text().splitlines()]
    assert captured[-1] - captured[0] > 1.4  # 45 frames of a 29.97 fps clip: 1.47 s at its pace
    quick = run_cli("run", "-i", clip, "-o", preview, "--no-realtime", "--max-frames", "5")
    assert quick.returncode == 0 and "WARNING" not in quick.stderr
    for outputs, options, paced_on in [([preview, "null"], None, True), ([preview], SourceOptions(realtime=False), False),
                                       (["null", str(tmp_path / "o.mp4")], None, False)]:
        with Pipeline(clip, engine, "blur", outputs, source_options=options) as pipeline:
            assert pipeline.sources[0].realtime is paced_on, outputs


def test_a_run_on_onnx_runtime_does_not_load_torch(model_cache):
    """torch is a second of every start (1.8 s for a one-frame run, 0.45 s without it: 2-core dev machine,
    2026-12-01); a run on ONNX Runtime with its model converted already never needs it."""
    import subprocess
    import sys

    code = ("import sys; from realtime.cli import main; "
            "code = main(['run', '-i', 'synthetic:64x48@10?frames=2', '-o', 'null']); "
            "print(code, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["0", "False"], run.stderr
