"""CUDA compositor kernels: every kernel compiles with NVRTC for each target GPU; each mode and the preprocessing
equal their CPU reference — on a GPU within ±1 per channel, and everywhere through the host emulation
(realtime/compositor/emulator.py: the same kernels.cu, one CUDA thread at a time), which also checks every
launch against its kernel's signature and, under AddressSanitizer, every buffer access."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from engines.errors import BackendError
from realtime.compositor import MODES, MaskPostprocessor, MaskSettings, make_compositor
from realtime.compositor.cuda import (
    ARCHITECTURES,
    BLUR_SEGMENT,
    KERNEL_NAMES,
    SOURCE_PATH,
    CudaCompositor,
    compile_kernels,
    kernel_resources,
)
from realtime.compositor.emulator import HostKernels
from tests.common import frame_number, numbered_video

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


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_no_kernel_spills_to_local_memory_or_halves_occupancy(arch):
    """Per thread: no stack frame and no register spills (local memory is off-chip), and at most 64 registers,
    so that an SM still holds at least half its threads in 256-thread blocks (every launch's block size)."""
    resources = kernel_resources(arch)
    assert set(resources) == set(KERNEL_NAMES), "ptxas reported every kernel"
    for name, used in resources.items():
        assert used["stack_bytes"] == used["spill_stores"] == used["spill_loads"] == 0, (name, used)
        assert 0 < used["registers"] <= 64, (name, used)


def test_without_cuda_python_compiling_says_what_to_install(monkeypatch, tmp_path):
    import sys

    for module in ("cuda.bindings", "cuda.bindings.nvrtc", "cuda.core"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` of it raises ImportError
    for compile_them in (lambda: compile_kernels("sm_90", cache=tmp_path), lambda: kernel_resources("sm_90")):
        with pytest.raises(BackendError, match=r"pip install 'realtime-masking\[cuda\]'"):
            compile_them()


@pytest.fixture(params=["host", pytest.param("cuda", marks=pytest.mark.gpu)])
def launcher(request):
    """What runs kernels.cu: ``host`` emulates it on the CPU (every CI run), ``cuda`` is a real GPU."""
    torch = pytest.importorskip("torch")
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA GPU here: the host emulation ran the same kernels (benchmarks/gpu_check.py on a GPU)")
        from realtime.compositor.cuda import DeviceKernels

        return DeviceKernels()
    from realtime.compositor.emulator import HostKernels

    try:
        return HostKernels()
    except BackendError as exc:
        pytest.skip(str(exc))


GPU_CASES = [("blur", {"strength": 5}, MaskSettings()), ("blur", {}, MaskSettings(dilate_px=7, feather_px=3)),
             ("blur", {"strength": 150}, MaskSettings()),  # int32 sums; a window wider than a small frame
             ("pixelate", {"block": 13}, MaskSettings(ema_alpha=0.4)), ("fill", {"color": "9,99,199"}, MaskSettings()),
             ("overlay", {"opacity": 0.35}, MaskSettings(target="background")), ("cutout", {}, MaskSettings()),
             ("cutout", {"cutout_format": "green"}, MaskSettings()), ("mask", {}, MaskSettings(feather_px=2)),
             ("replace", {}, MaskSettings(dilate_px=3)),
             ("fill", {"color": "0,0,0"}, MaskSettings(ema_alpha=0.3, fail_closed=True)),  # privacy's smoothing
             ("blur", {}, MaskSettings(dilate_px=3, feather_px=4, fail_closed=True)),  # privacy's feather: outwards
             ("pixelate", {}, MaskSettings(feather_px=2, fail_closed=True)),
             ("overlay", {}, MaskSettings(target="background", ema_alpha=0.5, fail_closed=True))]


def _options(mode, options, tmp_path, rng):
    if mode == "replace":  # a background of another size, resized by the resize_u8 kernel
        cv2.imwrite(str(tmp_path / "bg.png"), rng.integers(1, 256, (50, 80, 3), np.uint8))
        return {"background": str(tmp_path / "bg.png")}
    return options


def _check_equal(launcher, mode, options, settings, frames, probabilities, at=None):
    """Kernels vs CPU reference (realtime/bench/kernels.py): within ±1 on a GPU, where FMA contraction in the
    moving average may still flip a pixel lying within float rounding of the threshold; bit for bit in the
    host emulation (no FMA), except ``replace``, whose background OpenCV resizes in fixed point (±1)."""
    from realtime.bench.kernels import compare_kernels

    result = compare_kernels(launcher, mode, options, settings, frames, probabilities, at)
    # the kernel works out source coordinates in float, OpenCV in double: ~1e-5 at 15x upsampling
    assert result["upsample_max_error"] < 1e-4, result
    if isinstance(launcher, HostKernels) and mode != "replace":
        assert result["max_diff"] == 0, (mode, result)
    flips_allowed = settings.ema_alpha < 1 and not isinstance(launcher, HostKernels)
    assert result["max_diff"] <= 1 or (flips_allowed and result["share_over_1"] < 1e-5), (mode, result)


@pytest.mark.parametrize("settings", [MaskSettings(), MaskSettings(ema_alpha=0.5, dilate_px=2)])
def test_a_nan_probability_is_masked_by_kernels_and_reference_alike(launcher, settings, tmp_path):
    """NaN compares false with every threshold: "p >= threshold" would leave a NaN pixel unmasked."""
    rng = np.random.default_rng()
    frames = [rng.integers(1, 256, (137, 251, 3), np.uint8) for _ in range(3)]
    probabilities = [np.zeros((64, 64), np.float32) for _ in range(3)]
    for probability in probabilities:
        probability[20:40, 10:30] = np.nan  # an engine that overflowed there
    _check_equal(launcher, "fill", {"color": "0,0,255"}, settings, frames, probabilities)
    alpha = MaskPostprocessor(settings)(cv2.resize(probabilities[0], (251, 137)))
    assert alpha[60:80, 60:100].min() == 1.0 and alpha[:20].max() == 0.0


@pytest.mark.parametrize("mode,options,settings", GPU_CASES)
@pytest.mark.parametrize("size", [(1080, 1920), (137, 251)])
def test_kernels_equal_cpu_reference(launcher, mode, options, settings, size, tmp_path):
    rng = np.random.default_rng()  # fresh frames each run, never zeros
    frames = [rng.integers(1, 256, (*size, 3), np.uint8) for _ in range(3)]
    probabilities = [rng.random((64, 64), np.float32) for _ in range(3)]
    _check_equal(launcher, mode, _options(mode, options, tmp_path, rng), settings, frames, probabilities)


def test_replace_with_a_background_video_takes_its_next_frame_for_each_frame_of_a_batch(launcher, tmp_path):
    """A looping background video: each frame of a batch gets the video's next frame (three frames, five composites)."""
    rng = np.random.default_rng()
    video = cv2.VideoWriter(str(tmp_path / "bg.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 48))
    for level in (40, 120, 200):  # flat frames far apart, so a frame taken out of turn shows
        video.write(np.full((48, 80, 3), level, np.uint8))
    video.release()
    frames = [rng.integers(1, 256, (45, 67, 3), np.uint8) for _ in range(5)]
    probabilities = [np.ones((8, 8), np.float32) for _ in range(5)]  # the whole frame replaced
    _check_equal(launcher, "replace", {"background": str(tmp_path / "bg.avi")}, MaskSettings(), frames, probabilities)


def test_replace_with_a_background_video_takes_the_frame_of_each_frames_moment(launcher, tmp_path):
    """Given each frame's time, the kernels take the background video's frame of that moment, as the reference does:
    a 10 fps background of 3 frames (0.3 s, looped) behind frames at 0, 0.05, 0.2, 0.25 and 0.55 s shows frames
    0, 0, 2, 2 and 2."""
    from realtime.compositor.modes import ReplaceCompositor

    background = str(numbered_video(tmp_path / "bg.mkv", [0.0, 0.1, 0.2]))
    rng = np.random.default_rng()
    frames = [rng.integers(1, 256, (45, 67, 3), np.uint8) for _ in range(5)]
    probabilities = [np.ones((8, 8), np.float32) for _ in range(5)]  # the whole frame replaced
    times = [0.0, 0.05, 0.2, 0.25, 0.55]
    _check_equal(launcher, "replace", {"background": background}, MaskSettings(), frames, probabilities, times)
    reference = ReplaceCompositor(background)
    assert [frame_number(reference.composite(frame, np.ones((45, 67), np.float32), at))
            for frame, at in zip(frames, times, strict=True)] == [0, 0, 2, 2, 2]


@pytest.mark.parametrize("mode,options,settings", [GPU_CASES[1], GPU_CASES[3], GPU_CASES[-1]])
def test_kernels_equal_cpu_reference_at_4k(launcher, mode, options, settings, tmp_path):
    rng = np.random.default_rng()
    frames = [rng.integers(1, 256, (2160, 3840, 3), np.uint8) for _ in range(2)]
    probabilities = [rng.random((256, 256), np.float32) for _ in range(2)]
    _check_equal(launcher, mode, _options(mode, options, tmp_path, rng), settings, frames, probabilities)


@pytest.mark.parametrize("mode,options,settings", GPU_CASES)
def test_kernels_equal_cpu_reference_on_a_real_clip(launcher, engine, mode, options, settings, tmp_path):
    """The real model's probability on real frames, preprocessed by the kernel: the GPU path's data end to end."""
    import torch

    from realtime.capture.files import read_frames
    from tests.common import MEDIA, need_shared

    need_shared()
    frames = read_frames(MEDIA / "carphone_pristine.mp4", 3)
    model_inputs = []
    for frame in frames:
        model_input = torch.empty((3, *engine.spec.input_hw), dtype=torch.float32, device=launcher.torch_device)
        CudaCompositor(make_compositor("mask"), MaskSettings(), launcher=launcher).preprocess(
            torch.from_numpy(frame).to(launcher.torch_device), model_input, engine.spec)
        model_inputs.append(model_input.cpu().numpy())
    probabilities = [p[0] for p in engine.infer(np.stack(model_inputs))]
    assert 0.02 < np.mean(np.stack(probabilities) > 0.5) < 0.9  # a person is there
    rng = np.random.default_rng()
    _check_equal(launcher, mode, _options(mode, options, tmp_path, rng), settings, frames, probabilities)


@pytest.mark.parametrize("resize,input_hw,mean,std", [("mediapipe", (256, 256), (0.0,) * 3, (1.0,) * 3),
                                                     ("linear", (144, 256), (0.0,) * 3, (1.0,) * 3),
                                                     ("mediapipe", (256, 256), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
@pytest.mark.parametrize("size", [(1080, 1920), (137, 251), (100, 90)])
@pytest.mark.parametrize("frame_color", ["bgr", "rgb"])
def test_preprocess_kernel_equals_frames_to_batch(launcher, resize, input_hw, mean, std, size, frame_color):
    """Resize + [0, 1] + mean/std + channel order + NCHW in one kernel, against engines/preprocess.py: equal
    within one uint8 level before normalisation (OpenCV's uint8 linear resize works in fixed point)."""
    import torch

    from engines.preprocess import frames_to_batch
    from engines.spec import ModelSpec

    spec = ModelSpec(input_hw=input_hw, resize=resize, mean=mean, std=std)
    frame = np.random.default_rng().integers(1, 256, (*size, 3), np.uint8)
    expected = frames_to_batch([frame], spec, frame_color)[0]
    out = torch.empty((3, *input_hw), dtype=torch.float32, device=launcher.torch_device)
    CudaCompositor(make_compositor("mask"), MaskSettings(), launcher=launcher).preprocess(
        torch.from_numpy(frame).to(launcher.torch_device), out, spec, frame_color)
    levels = np.abs(out.cpu().numpy() - expected) * np.asarray(std, np.float32)[:, None, None] * 255
    assert levels.max() <= (0.001 if resize == "mediapipe" else 1.001), levels.max()


def test_modes_all_have_kernels():
    assert set(MODES) == {"blur", "pixelate", "fill", "replace", "overlay", "cutout", "mask"}


def test_gpu_check_script_runs_its_cpu_side(model_cache, tmp_path):
    """Without a GPU, benchmarks/gpu_check.py runs the kernels' equality and the GPU stage's latency code emulated,
    so a mistake in the script shows here instead of in the minutes of a lent GPU."""
    import json
    import subprocess
    import sys

    from tests.common import REPO

    (tmp_path / "cache").symlink_to(model_cache)  # the check's data folder holds the model cache
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--data", str(tmp_path),
                             "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["compile_sm_90"]["cubin_bytes"] > 10_000
    assert data["compile_sm_90"]["kernel_resources"]["mask_from_probability"]["registers"] > 0
    assert data["kernel_equality_host_emulated"]["pass"] is True, data["kernel_equality_host_emulated"]
    stages = data["gpu_stages_host_emulated"]
    assert "error" not in stages, stages
    for row in stages.values():
        assert set(row["stages_per_batch"]) == {"h2d", "preprocess", "inference", "composite", "d2h"}
        assert row["overlapped_frames_per_s"] > 0 and row["overlapped_frames_per_s_in_place"] > 0
    assert data["host_mask_composite_host_emulated"]["max_diff"] == 0
    bench = data["pipeline_bench_host_emulated"]  # `bench` through the pipeline's GPU loop (post-processing fused)
    assert "error" not in bench and all(row["stages"]["postprocess"]["max_ms"] == 0 for row in bench.values()), bench
    tests = data["gpu_tests"]  # the suite's GPU cases: all skipped here, none failing to import
    assert tests["pass"] is True and "skipped" in tests["summary"] and "error" not in tests["summary"], tests
    assert "machine" in data and "gpu" in data


@pytest.mark.parametrize("mode,options,settings", GPU_CASES)
def test_every_launch_matches_its_kernel_signature(mode, options, settings, tmp_path):
    """Without a GPU: run the compositor on a batch of CPU tensors through the host emulation and check each launch
    against kernels.cu — argument count, int/float scalars as np.int32/np.float32 (both checked by
    HostKernels itself), pointers to tensors of the kernel's element type, and a grid that covers the images
    (its z the frames of the batch)."""
    import torch

    from engines.spec import ModelSpec
    from realtime.compositor.emulator import kernel_signatures

    try:
        host = HostKernels()
    except BackendError as exc:
        pytest.skip(str(exc))
    signatures = kernel_signatures(SOURCE_PATH.read_text())
    n, height, width = 2, 137, 251
    frame = torch.from_numpy(np.random.default_rng().integers(1, 256, (n, height, width, 3), np.uint8))
    probability, model_input = torch.rand((n, 64, 64)), torch.zeros((n, 3, 256, 256))
    element = {"u8*": torch.uint8, "u16*": torch.uint16, "float*": torch.float32, "int*": torch.int32,
               "i64*": torch.int64}
    per_pixel_2d = ("mask_from_probability", "dilate", "feather_h", "feather_v", "resize_u8")
    segments = -(-width // BLUR_SEGMENT), -(-height // BLUR_SEGMENT)
    domains = {**dict.fromkeys(per_pixel_2d, (width, height)), "row_prefix": (height,), "preprocess": (256, 256),
               "box_h_u16": (segments[0], height), "box_h_i32": (segments[0], height),
               "box_v_u16": (width, segments[1]), "box_v_i32": (width, segments[1])}
    launched = []

    def record(name, config, *args):
        tensors = [frame, probability, model_input, *compositor._buffers.values()]
        if compositor.halfwidths is not None:
            tensors.append(compositor.halfwidths)
        if compositor.moving_average.tensor is not None:
            tensors += [compositor.moving_average.tensor, compositor._states_in_use]
        for index, (arg, (kind, param)) in enumerate(zip(args, signatures[name], strict=True)):
            expected = element.get(kind)
            if kind == "void*":  # the alpha: uint8 0/1 mask when the next argument (alpha_u8) says so, else float32
                expected = torch.uint8 if args[index + 1] else torch.float32
            owners = [t for t in tensors if arg and t.data_ptr() == arg]
            assert all(t.dtype == expected for t in owners), f"{name} {param}: {[t.dtype for t in owners]}"
        covered = tuple(g * b for g, b in zip(config.grid, config.block, strict=True))
        # mask_from_probability walks the batch inside each thread; resize_u8 makes the one background
        frames = 1 if name in ("mask_from_probability", "resize_u8") else n
        x_y = (*domains.get(name, (height * width,)), 1)[:2]
        domain = (*x_y, frames)
        if name == "pixelate_means":
            block = compositor.mode.block
            domain = (-(-width // block), -(-height // block), 3 * n)
        assert covered[2] == domain[2] and all(c >= d for c, d in zip(covered, domain, strict=True)), \
            f"{name}: grid {covered} < {domain}"
        launched.append(name)
        host(name, config, *args)

    record.torch_device = host.torch_device
    compositor = CudaCompositor(make_compositor(mode, **_options(mode, options, tmp_path, np.random.default_rng())),
                                settings, launcher=record)
    out, alpha = compositor(frame, probability)
    assert alpha.shape == (n, height, width) and alpha.dtype == (torch.float32 if settings.feather_px else torch.uint8)
    assert out.shape[:3] == (n, height, width) and out.dtype == torch.uint8
    compositor.preprocess(frame, model_input, ModelSpec(input_hw=(256, 256), resize="mediapipe"))
    assert launched[0] == "mask_from_probability" and launched[-1] == "preprocess"
    dilates = bool(settings.dilate_px or (settings.fail_closed and settings.feather_px))  # fail-closed feather: outwards
    assert ("dilate" in launched) == dilates and ("feather_v" in launched) == bool(settings.feather_px)


def test_host_emulation_rejects_wrong_argument_types():
    """What cuda.core would pass to the GPU as garbage (a Python float for an int, a numpy int for a pointer)
    is an error in the emulation."""
    from cuda.core import LaunchConfig

    try:
        host = HostKernels()
    except BackendError as exc:
        pytest.skip(str(exc))
    config = LaunchConfig(grid=(1, 1, 1), block=(1, 1, 1))
    with pytest.raises(BackendError, match="mask_grey: 4 arguments for 5"):
        host("mask_grey", config, 0, np.int32(0), np.int32(1), np.int32(1))
    with pytest.raises(BackendError, match=r"argument 2 \(int H\): got float"):
        host("mask_grey", config, 0, np.int32(0), 1.0, np.int32(1), 0)
    with pytest.raises(BackendError, match=r"argument 0 \(void\* alpha\): got int64"):
        host("mask_grey", config, np.int64(0), np.int32(0), np.int32(1), np.int32(1), 0)


SANITIZED_RUN = """
import sys
from pathlib import Path

import numpy as np
import torch
from engines.spec import ModelSpec
from realtime.compositor import MaskSettings, make_compositor
from realtime.compositor.cuda import CudaCompositor
from realtime.compositor.emulator import HostKernels
from tests.common import frame_number, numbered_video
from tests.realtime.test_cuda_kernels import GPU_CASES, _options

host = HostKernels(sanitize=True)
rng = np.random.default_rng()
for mode, options, settings in GPU_CASES:
    options = _options(mode, options, Path(sys.argv[1]), rng)
    compositor = CudaCompositor(make_compositor(mode, **options), settings, launcher=host)
    for height, width in ((37, 61), (64, 64), (1, 1), (9, 300)):
        frame = torch.from_numpy(rng.integers(1, 256, (height, width, 3), np.uint8))
        compositor(frame, torch.rand((16, 16)), probability_out=torch.empty((height, width)))
        batch = torch.from_numpy(rng.integers(1, 256, (3, height, width, 3), np.uint8))  # one launch, three frames
        compositor(batch, torch.rand((3, 16, 16)), probability_out=torch.empty((3, height, width)))
        for resize, hw in (("mediapipe", (32, 32)), ("linear", (18, 32))):
            compositor.preprocess(frame, torch.empty((3, *hw)), ModelSpec(input_hw=hw, resize=resize))
            compositor.preprocess(batch, torch.empty((3, 3, *hw)), ModelSpec(input_hw=hw, resize=resize))
print("clean")
"""


def test_no_kernel_reads_or_writes_outside_its_buffers(tmp_path):
    """Every mode and the preprocessing, at odd and tiny sizes, emulated under AddressSanitizer: a kernel that
    touches one element past a buffer (a bounds check off by one, a wrong stride) aborts the run."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.common import REPO

    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("gcc") else ""
    if not libasan.startswith("/"):
        pytest.skip("needs gcc with AddressSanitizer (libasan) to check the kernels' bounds")
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", SANITIZED_RUN, str(tmp_path)], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-3000:]


def test_host_launch_overhead_benchmark_counts_one_launch_a_kernel_per_batch():
    """benchmarks/host_launch_overhead.py (its README figure): a batch costs the launches of one frame."""
    from benchmarks.host_launch_overhead import measure

    for row in measure(batch=3, height=20, width=30, rounds=2).values():
        assert row["per_frame"]["launches_per_batch"] == 3 * row["batched"]["launches_per_batch"] > 0
        assert row["batched"]["python_ms_per_batch"] > 0
