"""The TensorRT backend: static checks everywhere, runtime checks wherever ``tensorrt`` imports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.common import REPO

BACKEND = REPO / "engines" / "backends" / "tensorrt_backend.py"
REMOVED = [
    r"execute_async_v2", r"execute_v2", r"\bexecute_async\(", r"get_binding_\w+", r"binding_is_input", r"num_bindings",
    r"\bbuild_engine\(", r"max_workspace_size", r"BuilderFlag\.FP16", r"BuilderFlag\.INT8", r"EXPLICIT_BATCH",
    r"device_memory_size\b", r"platform_has_fast_fp16", r"platform_has_fast_int8", r"max_batch_size",
    r"set_binding_shape", r"get_binding_shape", r"\bbindings\s*=", r"pycuda",
]


def _code_only(path: Path) -> str:
    """The source without comments and docstrings (they may name removed APIs to warn about them)."""
    text = re.sub(r'"""[\s\S]*?"""', "", path.read_text())
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("pattern", REMOVED)
def test_no_api_removed_in_tensorrt_10_or_11(pattern):
    assert not re.search(pattern, _code_only(BACKEND)), f"{pattern} is gone from TensorRT 10/11"


def test_uses_the_name_based_api():
    code = _code_only(BACKEND)
    for needed in ("STRONGLY_TYPED", "set_memory_pool_limit", "build_serialized_network", "create_timing_cache",
                   "num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype", "set_input_shape",
                   "set_tensor_address", "execute_async_v3", "deserialize_cuda_engine", "add_optimization_profile"):
        assert needed in code, needed


def test_mypy_against_the_tensorrt_11_stub(tmp_path):
    if shutil.which("mypy") is None and subprocess.run([sys.executable, "-m", "mypy", "--version"],
                                                       capture_output=True).returncode != 0:
        pytest.skip("mypy not installed")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent", "--no-error-summary",
         "--cache-dir", str(tmp_path), str(BACKEND)],
        capture_output=True, text=True, cwd=REPO, env={"MYPYPATH": str(REPO / "stubs"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_tensorrt_is_a_clear_error(model_cache):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed here")
    import engines
    from engines.errors import BackendError

    with pytest.raises(BackendError, match="TensorRT is not installed here"):
        engines.load("mediapipe-selfie", backend="tensorrt", device="cuda")


@pytest.mark.gpu
def test_tensorrt_runtime_matches_onnxruntime(model_cache):
    pytest.importorskip("tensorrt", reason="tensorrt does not import here")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    import engines

    batch = np.random.default_rng(0).random((4, 3, 256, 256), np.float32)
    reference = engines.load("mediapipe-selfie").infer(batch)
    for precision, tolerance in (("fp32", 1e-3), ("fp16", 2e-2)):
        engine = engines.load("mediapipe-selfie", backend="tensorrt", device="cuda", precision=precision)
        assert np.abs(engine.infer(batch) - reference).max() < tolerance
