"""CUDA compositor kernels: every kernel compiles with NVRTC for each target GPU (no GPU needed),
and on a GPU each mode equals the CPU reference within ±1 per channel."""

from __future__ import annotations

import re

import numpy as np
import pytest

from realtime.compositor import MODES, MaskPostprocessor, MaskSettings, make_compositor
from realtime.compositor.cuda import ARCHITECTURES, KERNEL_NAMES, SOURCE_PATH, compile_kernels, ellipse_halfwidths

cuda_core = pytest.importorskip("cuda.core", reason="cuda-python (cuda.core) not installed")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_kernel_compiles(arch, tmp_path):
    cubin = compile_kernels(arch, cache=tmp_path)
    assert cubin[:4] == b"\x7fELF"
    declared = set(re.findall(r'extern "C" __global__ void (\w+)', SOURCE_PATH.read_text()))
    assert declared == set(KERNEL_NAMES)
    symbols = set(cubin.split(b"\0"))
    assert all(name.encode() in symbols for name in KERNEL_NAMES), "every kernel must be in the cubin"
    assert compile_kernels(arch, cache=tmp_path) == cubin  # second call comes from the disk cache
    assert len(list((tmp_path / "cubin").glob("*.cubin"))) == 1


def test_ellipse_halfwidths_rebuild_opencv_element():
    import cv2

    for radius in (0, 1, 4, 13):
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        rebuilt = np.zeros_like(element)
        for row, half in enumerate(ellipse_halfwidths(radius)):
            if half >= 0:
                rebuilt[row, radius - half:radius + half + 1] = 1
        np.testing.assert_array_equal(rebuilt, element)


def _gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: kernel equality runs on a GPU machine (benchmarks/gpu_check.py)")
    return torch


GPU_CASES = [("blur", {"strength": 5}, MaskSettings()), ("blur", {}, MaskSettings(dilate_px=7, feather_px=3)),
             ("pixelate", {"block": 13}, MaskSettings(ema_alpha=0.4)), ("fill", {"color": "9,99,199"}, MaskSettings()),
             ("overlay", {"opacity": 0.35}, MaskSettings(target="background")), ("cutout", {}, MaskSettings()),
             ("cutout", {"cutout_format": "green"}, MaskSettings()), ("mask", {}, MaskSettings(feather_px=2))]


@pytest.mark.parametrize("mode,options,settings", GPU_CASES)
@pytest.mark.parametrize("size", [(1080, 1920), (137, 251)])
def test_kernels_equal_cpu_reference_on_gpu(mode, options, settings, size):
    torch = _gpu()
    from realtime.compositor.cuda import CudaCompositor

    rng = np.random.default_rng()
    cpu_mode = make_compositor(mode, **options)
    gpu = CudaCompositor(cpu_mode, settings)
    post = MaskPostprocessor(settings)
    for _ in range(3):
        frame = rng.integers(1, 256, (*size, 3), np.uint8)
        probability = rng.random((64, 64), np.float32)
        import cv2

        full = cv2.resize(probability, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        expected = cpu_mode.composite(frame, post(full))
        out, _ = gpu(torch.from_numpy(frame).cuda(), torch.from_numpy(probability).cuda())
        torch.cuda.synchronize()
        diff = np.abs(out.cpu().numpy().astype(np.int32) - expected.astype(np.int32))
        assert diff.max() <= 1 or np.mean(diff > 1) < 1e-4, (mode, diff.max())


def test_modes_all_have_kernels():
    assert set(MODES) == {"blur", "pixelate", "fill", "replace", "overlay", "cutout", "mask"}


def test_gpu_check_script_runs_its_cpu_side(tmp_path):
    import json
    import subprocess
    import sys

    from tests.common import REPO

    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--data", str(tmp_path),
                             "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["compile_sm_90"]["cubin_bytes"] > 10_000
    assert "machine" in data and "gpu" in data
