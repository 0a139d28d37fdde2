"""The ``realtime-mask`` command as a user runs it: models list/fetch/export, masks, and bad inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import tflite

from tests.common import MEDIA, need_shared, write_onnx_conv, write_tflite_single_op


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realtime.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_models_list_shows_sizes_and_cache_state(model_cache, tmp_path):
    warm = run_cli("models", "list")
    assert warm.returncode == 0
    assert "mediapipe-selfie " in warm.stdout and "256x256" in warm.stdout and "144x256" in warm.stdout
    cold = run_cli("--cache-dir", str(tmp_path), "models", "list")
    assert cold.stdout.count(" no ") == 2 and str(tmp_path) in cold.stdout


def test_models_fetch_then_export_both_precisions(model_cache, tmp_path):
    fetched = run_cli("models", "fetch", "mediapipe-selfie-landscape")
    assert fetched.returncode == 0 and fetched.stdout.strip().endswith("selfie_segmentation_landscape.tflite")
    for flag, dtype in (([], onnx.TensorProto.FLOAT), (["--fp16"], onnx.TensorProto.FLOAT16)):
        out = tmp_path / f"m{len(flag)}.onnx"
        result = run_cli("models", "export", "mediapipe-selfie", *flag, "--out", str(out))
        assert result.returncode == 0, result.stderr
        model = onnx.load(str(out))
        assert model.opset_import[0].version >= 17
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert any(t.data_type == dtype for t in model.graph.initializer)
    cached = run_cli("models", "export", "mediapipe-selfie").stdout.strip()  # exported onto itself: nothing to do
    again = run_cli("models", "export", "mediapipe-selfie", "--out", cached)
    assert again.returncode == 0 and again.stdout.strip() == cached, again.stderr
    onnx.checker.check_model(cached)


def test_masks_on_image_folder(model_cache, tmp_path):
    import cv2

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((60, 80, 3), 40 * i, np.uint8))
    out = tmp_path / "m.npz"
    result = run_cli("masks", str(frames), "--out", str(out), "--backend", "torch")
    assert result.returncode == 0, result.stderr
    assert np.load(out)["masks"].shape == (3, 60, 80)


@pytest.fixture
def bad_files(model_cache, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((model_cache / "models/mediapipe-selfie/selfie_segmentation.tflite").read_bytes()[:50_000])
    write_tflite_single_op(tmp_path / "tanh.tflite", tflite.BuiltinOperator.TANH)
    write_onnx_conv(tmp_path / "flat.onnx", output_rank=3)
    served = tmp_path / "served.tflite"
    shutil.copyfile(model_cache / "models/mediapipe-selfie/selfie_segmentation.tflite", served)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 not a video" * 100)
    return tmp_path


@pytest.mark.parametrize(
    "make_args,fragments",
    [
        (lambda d, clip: ["masks", clip, "--model", "selfie-v9", "--out", f"{d}/o.npz"],
         ["unknown model 'selfie-v9'", "mediapipe-selfie"]),
        (lambda d, clip: ["masks", clip, "--model", (d / "served.tflite").as_uri(), "--model-sha256", "ab" * 32,
                          "--out", f"{d}/o.npz", "--cache-dir", f"{d}/c"], ["sha256", "expected abab"]),
        (lambda d, clip: ["masks", clip, "--model", f"{d}/cut.tflite", "--out", f"{d}/o.npz"],
         ["cut.tflite is truncated or corrupt"]),
        (lambda d, clip: ["masks", clip, "--model", f"{d}/tanh.tflite", "--out", f"{d}/o.npz"],
         ["tanh.tflite uses operator TANH"]),
        (lambda d, clip: ["masks", clip, "--model", f"{d}/flat.onnx", "--out", f"{d}/o.npz"],
         ["output must be [N, 1, H, W]", "got ['N', 32, 32]"]),
        (lambda d, clip: ["masks", f"{d}/missing.mp4", "--out", f"{d}/o.npz"], ["missing.mp4 does not exist"]),
        (lambda d, clip: ["masks", f"{d}/broken.mp4", "--out", f"{d}/o.npz"], ["broken.mp4"]),
        (lambda d, clip: ["masks", clip, "--out", f"{d}/no/such/dir/o.npz"], ["does not exist", "o.npz"]),
        (lambda d, clip: ["masks", clip, "--out", str(d)], ["is a folder"]),
        (lambda d, clip: ["masks", clip, "--out", f"{d}/o.npz", "--batch", "0"], ["--batch must be >= 1"]),
        (lambda d, clip: ["models", "fetch", "nope"], ["unknown model 'nope'"]),
        (lambda d, clip: ["masks", clip, "--out", f"{d}/o.npz", "--backend", "tflite"], ["invalid choice"]),
        (lambda d, clip: ["masks", clip, "--out", f"{d}/o.txt"], ["o.txt must end in .npz"]),
        (lambda d, clip: ["build-engine", "mediapipe-selfie", "--batch", "0"], ["need 1 <= --batch <= --max-batch"]),
    ],
    ids=["unknown-model", "checksum-mismatch", "truncated-tflite", "unsupported-op", "onnx-output-shape",
         "missing-source", "unreadable-source", "unwritable-output", "output-is-folder", "bad-batch",
         "fetch-unknown", "bad-backend", "archive-not-npz", "build-engine-bad-batch"],
)
def test_bad_inputs_one_line_exit_2(bad_files, make_args, fragments):
    need_shared()
    clip = str(MEDIA / "carphone_pristine.mp4")
    assert_one_line_error(run_cli(*make_args(bad_files, clip)), *fragments)
    assert not (bad_files / "o.npz").exists()
