"""CUDA compositor kernels: every kernel compiles with NVRTC for each target GPU and every launch matches its
kernel's signature (no GPU needed), and on a GPU each mode equals the CPU reference within ±1 per channel."""

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


def _kernel_signatures() -> dict[str, list[str]]:
    """Parameter kinds of every kernel in kernels.cu: 'u8*', 'float*', 'int*', 'int' or 'float'."""
    signatures = {}
    for name, params in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', SOURCE_PATH.read_text()):
        kinds = []
        for param in params.split(","):
            words = param.replace("const ", "").split()
            kinds.append(words[0].rstrip("*") + ("*" if "*" in param else ""))
        signatures[name] = kinds
    return signatures


@pytest.mark.parametrize("mode,options,settings", [*GPU_CASES, ("replace", {}, MaskSettings(dilate_px=3))])
def test_every_launch_matches_its_kernel_signature(mode, options, settings, tmp_path):
    """Without a GPU: run the compositor's host code on CPU tensors and check each launch against kernels.cu —
    argument count, int/float scalars as np.int32/np.float32, pointers to tensors of the kernel's element type,
    and a grid that covers the image."""
    import cv2
    import torch

    from engines.spec import ModelSpec
    from realtime.compositor.cuda import CudaCompositor

    if mode == "replace":
        cv2.imwrite(str(tmp_path / "bg.png"), np.full((50, 80, 3), 90, np.uint8))
        options = {"background": str(tmp_path / "bg.png")}
    signatures = _kernel_signatures()
    gpu = CudaCompositor.__new__(CudaCompositor)  # host side only: no device, no stream, no module
    gpu.mode, gpu.settings, gpu.device_id = make_compositor(mode, **options), settings, 0
    gpu.torch_device, gpu.state, gpu._buffers, gpu._background = torch.device("cpu"), None, {}, None
    gpu.halfwidths = torch.from_numpy(ellipse_halfwidths(settings.dilate_px))
    height, width = 137, 251
    frame, probability = torch.zeros((height, width, 3), dtype=torch.uint8), torch.rand((64, 64))
    model_input = torch.zeros((3, 256, 256))
    tensors = [frame, probability, model_input, gpu.halfwidths]
    element = {"u8*": torch.uint8, "float*": torch.float32, "int*": torch.int32}
    per_pixel_2d = ("mask_from_probability", "dilate", "feather_h", "feather_v", "box_h_u8", "box_v_u8", "resize_u8")
    domains = {**dict.fromkeys(per_pixel_2d, (width, height)), "row_prefix": (height,), "preprocess": (256, 256)}
    launched = []

    def record(name, config, *args):
        kinds = signatures[name]
        assert len(args) == len(kinds), f"{name}: {len(args)} arguments for {len(kinds)} parameters"
        for index, (arg, kind) in enumerate(zip(args, kinds, strict=True)):
            where = f"{name} argument {index} ({kind})"
            if kind == "int":
                assert isinstance(arg, np.int32), where
            elif kind == "float":
                assert isinstance(arg, np.float32), where
            else:
                assert isinstance(arg, int) and not isinstance(arg, np.integer), where
                owners = [t for t in tensors + list(gpu._buffers.values()) if arg and t.data_ptr() == arg]
                assert all(t.dtype == element[kind] for t in owners), f"{where}: {[t.dtype for t in owners]}"
        covered = tuple(g * b for g, b in zip(config.grid, config.block, strict=True))
        domain = domains.get(name, (height * width, 1))
        if name == "pixelate_means":
            block = gpu.mode.block
            domain = (-(-width // block), -(-height // block), 3)
        assert all(c >= d for c, d in zip(covered, domain, strict=False)), f"{name}: grid {covered} < {domain}"
        launched.append(name)

    gpu._launch = record
    out, alpha = gpu(frame, probability)
    assert alpha.shape == (height, width) and alpha.dtype == torch.float32
    assert out.shape[:2] == (height, width) and out.dtype == torch.uint8
    gpu.preprocess(frame, model_input, ModelSpec(input_hw=(256, 256), resize="mediapipe"))
    assert launched[0] == "mask_from_probability" and launched[-1] == "preprocess"
    assert ("dilate" in launched) == bool(settings.dilate_px) and ("feather_v" in launched) == bool(settings.feather_px)
