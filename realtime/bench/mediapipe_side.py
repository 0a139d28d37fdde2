"""MediaPipe's own runtime, side by side: installed into its own virtual environment and run as a subprocess.

mediapipe 0.10.21 pins numpy<2, so it never enters the project's environment. The venv lives in the
model cache (``<cache>/mediapipe-venv``) and is made once.

Example:
    >>> times = mediapipe_times(frames_rgb, model_selection=0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import numpy as np

from engines import zoo
from engines.errors import BackendError

RUNNER = Path(__file__).with_name("mediapipe_runner.py")
REQUIREMENT = "mediapipe==0.10.21"


def mediapipe_python(cache: str | Path | None = None) -> Path:
    """Path of a Python that imports mediapipe, making its venv on first use."""
    folder = zoo.cache_dir(cache) / "mediapipe-venv"
    python = folder / "bin" / "python"
    probe = [str(python), "-c", "import mediapipe"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing {REQUIREMENT} into {folder} (once)...", file=sys.stderr)
    venv.create(folder, with_pip=True, clear=True)
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", REQUIREMENT], capture_output=True, text=True)
    if result.returncode != 0:
        raise BackendError(f"cannot install {REQUIREMENT}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return python


def mediapipe_times(frames_rgb: np.ndarray, model_selection: int, warmup: int = 10, blur_strength: int = 0,
                    cache: str | Path | None = None) -> dict[str, list[float]]:
    """Seconds per frame of MediaPipe's ``SelfieSegmentation.process`` on uint8 RGB frames [N, H, W, 3]
    (``mask_s``), and of process + the blur composite when ``blur_strength`` is given (``mask_blur_s``)."""
    python = mediapipe_python(cache)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames_rgb)
        command = [str(python), str(RUNNER), str(path), str(model_selection), str(warmup)]
        if blur_strength:
            command += ["--blur", str(blur_strength)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise BackendError(f"MediaPipe runner failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
