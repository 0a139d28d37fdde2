"""One GPU check: kernel equality, fp16 masks vs MediaPipe, per-stage GPU latency, throughput, strategies, TensorRT.

Runs on a CUDA machine with only torch, cuda-python, numpy and opencv-headless (no TensorRT, no ffmpeg,
no network) in under 5 minutes. Models, reference masks and clips come from a folder prepared here
with ``python benchmarks/gpu_check.py --prepare .device-cache`` (git-ignored; carry it to the GPU).
Writes one JSON file (card, driver, versions, figures), rewritten after each section, and prints a short
table. Each section records its own error instead of stopping the run; the optional ones (a `realtime-mask
bench` run through the whole pipeline, the test suite's GPU cases, strategies, TensorRT, torch-compile) are
skipped once ``--budget-s`` (240 s) is spent. Without a GPU it runs the CPU-side parts: the compile, and kernel
equality, the GPU stage's code and a pipeline bench through the GPU loop, emulated on the CPU.

Usage:
    python benchmarks/gpu_check.py --prepare .device-cache          # here, once (models, clips, tflite wheel)
    # on the GPU machine (carry: [".device-cache"]), where the image lacks only the pure-Python tflite package:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .device-cache/wheels/*.whl && \
      PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --data .device-cache --out $OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import zoo
from engines.metrics import compare_masks
from engines.preprocess import probability_to_uint8
from realtime.bench.machine import machine_info
from realtime.capture.files import read_frames

CLIPS = ["head-pose-face-detection-female-and-male.gif", "carphone_pristine.mp4", "one-by-one-person-detection.mp4"]


def prepare(folder: Path) -> None:
    """Copy the models, reference masks and clips the check needs into ``folder`` (to carry to the GPU)."""
    shared = Path(__file__).resolve().parents[2] / "shared"
    for name in zoo.MODELS:
        source = zoo.fetch(name)
        target = folder / "cache" / "models" / name / source.name  # a model cache the zoo finds offline
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    for clip in CLIPS:
        (folder / "media").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / "media" / clip, folder / "media" / clip)
        stem = clip.rsplit(".", 1)[0]
        (folder / "reference").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / "reference" / f"{stem}.model0.npz", folder / "reference" / f"{stem}.model0.npz")
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "tflite==2.18.0", "-d", str(wheels)], check=True)
    print(f"prepared {folder}: carry it with the run (carry: [{folder.name}])")




def percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {"p50_ms": float(np.percentile(values, 50)), "p90_ms": float(np.percentile(values, 90)),
            "p99_ms": float(np.percentile(values, 99)), "mean_ms": float(values.mean()), "count": int(values.size)}


STARTED = time.monotonic()


def section(results: dict[str, Any], name: str, body: Any, out: Path, budget_s: float = float("inf")) -> None:
    """Run one part of the check; its error is recorded, not raised, and the JSON is rewritten after each part
    (so a run stopped by its time limit still brings back what it measured). A part that would start after
    ``budget_s`` seconds of the run is skipped and says so."""
    start = time.monotonic()
    if start - STARTED > budget_s:
        results[name] = {"skipped": f"the run's time budget of {budget_s:g} s was spent before this part"}
        print(f"[   skip ] {name}: over the time budget", file=sys.stderr)
        out.write_text(json.dumps(results, indent=1, default=str) + "\n")
        return
    try:
        results[name] = body()
    except Exception as exc:
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
    print(f"[{time.monotonic() - start:6.1f} s] {name}: {'error' if 'error' in results[name] else 'ok'}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")


def kernel_equality(data: Path, launcher: Any, sizes: tuple[tuple[int, int], ...]) -> dict[str, Any]:
    """Every mode's kernels vs the CPU reference on fresh random frames (never zeros) of each size and on
    real clip frames (when ``data`` has them); pass = within ±1, or (moving average on a GPU, where FMA
    may flip a pixel within float rounding of the threshold) off by more on under 1e-5 of the values."""
    from realtime.bench.kernels import compare_kernels
    from realtime.compositor import MaskSettings

    rng = np.random.default_rng()
    cases: list[tuple[str, dict[str, Any], MaskSettings]] = [
        ("blur", {}, MaskSettings(dilate_px=6, feather_px=2)), ("blur", {"strength": 7}, MaskSettings()),
        ("blur", {"strength": 150}, MaskSettings()),  # int32 row sums
        ("pixelate", {"block": 16}, MaskSettings(ema_alpha=0.5)), ("fill", {"color": "20,40,60"}, MaskSettings()),
        ("overlay", {"opacity": 0.4}, MaskSettings(target="background")), ("cutout", {}, MaskSettings()),
        ("cutout", {"cutout_format": "green"}, MaskSettings()), ("mask", {}, MaskSettings(dilate_px=3)),
        ("fill", {"color": "0,0,0"}, MaskSettings(ema_alpha=0.3, fail_closed=True)),
        ("blur", {}, MaskSettings(dilate_px=3, feather_px=4, fail_closed=True))]
    background = data / "bg.png"
    cv2.imwrite(str(background), rng.integers(1, 256, (200, 300, 3), np.uint8))
    cases.append(("replace", {"background": str(background)}, MaskSettings(target="background", feather_px=3)))
    clip = data / "media" / CLIPS[0]
    sets = {f"{w}x{h}": [rng.integers(1, 256, (h, w, 3), np.uint8) for _ in range(3)] for h, w in sizes}
    if clip.is_file():
        sets[f"real {clip.name}"] = read_frames(clip, 3)
    out: dict[str, Any] = {}
    for mode, options, settings in cases:
        key = f"{mode}:{options}:{settings}"
        out[key] = {name: compare_kernels(launcher, mode, options, settings, frames,
                                          [rng.random((256, 256), np.float32) for _ in frames])
                    for name, frames in sets.items()}
        out[key]["pass"] = all(r["max_diff"] <= 1 or (settings.ema_alpha < 1 and r["share_over_1"] < 1e-5)
                               for r in out[key].values())
    out["pass"] = all(v["pass"] for v in out.values())
    return out


def fp16_masks(data: Path, backend: str = "torch") -> dict[str, Any]:
    import engines

    out: dict[str, Any] = {}
    start = time.monotonic()
    engine = engines.load("mediapipe-selfie", backend=backend, device="cuda", precision="fp16", cache=data / "cache")
    out["load_s"] = time.monotonic() - start  # torch-compile: the compile of batch 1
    for clip in CLIPS:
        reference = np.load(data / "reference" / f"{clip.rsplit('.', 1)[0]}.model0.npz")["masks"]
        frames = read_frames(data / "media" / clip, len(reference))
        masks = np.stack([probability_to_uint8(p) for p in engine.predict_batch(frames)])
        out[clip] = compare_masks(masks, reference)
    out["pass"] = all(r["mean_iou"] >= 0.97 for r in out.values() if isinstance(r, dict) and r.get("iou_frames"))
    return out


def overlapped(stage: Any, frames: list[np.ndarray], rounds: int, in_place: bool) -> tuple[float, list[float]]:
    """Seconds for rounds + 1 batches with the stage's two slots in flight (submit k+1 before collect k): frames
    copied in and out, or (``in_place``) already in the pinned input buffers and read out in place; and the host's
    ms in each ``submit`` (queuing the batch's work: if that is near the time per batch, the host is the limit)."""
    height, width = frames[0].shape[:2]
    host_ms: list[float] = []

    def submit() -> int:
        began = time.perf_counter()
        ticket = stage.submit(stage.input_buffers(height, width)[:len(frames)] if in_place else frames)
        host_ms.append((time.perf_counter() - began) * 1000)
        return ticket

    start = time.perf_counter()
    pending = submit()
    for _ in range(rounds):
        following = submit()
        stage.collect(pending, copy=not in_place)
        pending = following
    stage.collect(pending, copy=not in_place)
    return time.perf_counter() - start, host_ms


def gpu_latency(data: Path, precision: str = "fp16", backend: str = "torch", emulate: bool = False,
                sizes: tuple[tuple[int, int], ...] = ((720, 1280), (1080, 1920)), batches: tuple[int, ...] = (1, 16),
                iterations: int = 60, rounds: int = 40) -> dict[str, Any]:
    """Per-stage GPU latency of the GPU stage (blur) per size and batch, then its throughput with the two slots
    overlapping, with host copies and in place. ``emulate``: the same on the CPU (this script's code, checked
    here before it spends GPU minutes; the figures then mean nothing)."""
    import engines
    from realtime.compositor import MaskSettings, make_compositor
    from realtime.pipeline.gpu import GpuStage

    engine = engines.load("mediapipe-selfie", backend=backend, device="cpu" if emulate else "cuda",
                          precision="fp32" if emulate else precision, cache=data / "cache")
    rng = np.random.default_rng(1)
    out = {}
    for height, width in sizes:
        for batch in batches:
            stage = GpuStage(engine, make_compositor("blur"), MaskSettings(dilate_px=4), max_batch=batch, emulate=emulate)
            frames = [rng.integers(1, 256, (height, width, 3), np.uint8) for _ in range(batch)]
            samples: dict[str, list[float]] = {}
            totals = []
            for i in range(iterations):
                ticket = stage.submit(frames)
                timings = stage.collect(ticket).timings_ms
                if i >= iterations // 6:
                    for k, v in timings.items():
                        samples.setdefault(k, []).append(v * batch)  # per batch
                    totals.append(sum(timings.values()) * batch)
            # throughput with the two slots overlapping (submit k+1 before collect k): frames copied in and out
            elapsed, _ = overlapped(stage, frames, rounds, in_place=False)
            # the same with frames already in the pinned input buffers (as a decoder writing there leaves them)
            # and the output read in place: no host copies, the GPU stages and PCIe alone
            for _ in range(2):
                for buffer, frame in zip(stage.input_buffers(height, width), frames, strict=False):
                    np.copyto(buffer, frame)
                stage.collect(stage.submit(stage.input_buffers(height, width)[:batch]), copy=False)
            in_place, host_ms = overlapped(stage, frames, rounds, in_place=True)
            out[f"{width}x{height} batch {batch}"] = {
                "stages_per_batch": {k: percentiles(v) for k, v in samples.items()},
                "gpu_total_per_batch": percentiles(totals),
                "overlapped_frames_per_s": (rounds + 1) * batch / elapsed,
                "overlapped_frames_per_s_in_place": (rounds + 1) * batch / in_place,
                "host_submit_ms_per_batch_in_place": percentiles(host_ms),
                "wall_ms_per_batch_in_place": in_place * 1000 / (rounds + 1),
            }
    return out


def naive_chain() -> dict[str, Any]:
    """The baseline to beat: unfused torch ops for one 1080p frame, replayed as one CUDA graph."""
    import torch
    import torch.nn.functional as F

    import engines

    module = engines.resolve("mediapipe-selfie").torch_module.cuda().half().eval()
    host = torch.randint(1, 255, (1080, 1920, 3), dtype=torch.uint8).pin_memory()
    host_out = torch.empty_like(host).pin_memory()
    device = torch.empty((1080, 1920, 3), dtype=torch.uint8, device="cuda")
    stream = torch.cuda.Stream()

    def chain() -> None:
        device.copy_(host, non_blocking=True)
        x = device.permute(2, 0, 1)[None].half() / 255
        small = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        mask = module(small)
        mask = F.interpolate(mask, size=(1080, 1920), mode="bilinear", align_corners=False)
        blurred = F.avg_pool2d(x, 31, stride=1, padding=15)
        out = torch.lerp(x, blurred, (mask > 0.5).half())
        host_out.copy_((out[0].permute(1, 2, 0) * 255).to(torch.uint8), non_blocking=True)

    with torch.inference_mode():
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                chain()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            chain()
        times = []
        for i in range(110):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            if i >= 10:
                times.append(start.elapsed_time(end))
    return percentiles(times)


def blur_bandwidth() -> dict[str, Any]:
    """The blur composite of one 1080p frame (mask + two box passes, the last one blending), timed by CUDA events
    as launched from Python and, queued behind a GPU sleep so that launch gaps do not count, on the GPU alone."""
    import torch

    from realtime.compositor import MaskSettings, make_compositor
    from realtime.compositor.cuda import CudaCompositor

    gpu = CudaCompositor(make_compositor("blur"), MaskSettings())
    # eight frames and outputs in turn (100 MB, over the L2 cache), as new frames arrive in a stream
    frames = [torch.randint(1, 255, (1080, 1920, 3), dtype=torch.uint8, device="cuda") for _ in range(8)]
    outs = [torch.empty_like(frame) for frame in frames]
    probability = torch.rand((256, 256), device="cuda")

    def timed(queued: bool) -> dict[str, float]:
        times = []
        for i in range(110):
            if queued:
                torch.cuda._sleep(2_000_000)  # ~1 ms of GPU spin: the launches below queue up behind it
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            gpu(frames[i % 8], probability, outs[i % 8])
            end.record()
            end.synchronize()
            if i >= 10:
                times.append(start.elapsed_time(end))
        return percentiles(times)

    # bytes a pixel: binary mask write 1; box_h #1 frame 3 + uint16 sums 6; box_v #1 sums 6 + blurred 3;
    # box_h #2 blurred 3 + sums 6; box_v #2 + blend sums 6 + frame 3 + mask 1 + output 3 (window re-reads hit cache)
    moved = 1080 * 1920 * (1 + 9 + 9 + 9 + 13) + 256 * 256 * 4
    as_launched, gpu_only = timed(False), timed(True)
    return {"as_launched": as_launched, "gpu_only": gpu_only, "bytes_moved": moved,
            "bandwidth_TBps_at_gpu_only_p50": moved / (gpu_only["p50_ms"] / 1000) / 1e12}


def host_mask_composite(emulate: bool = False, size: tuple[int, int] = (1080, 1920), frames: int = 50) -> dict[str, Any]:
    """GpuComposite (the strategies' composite on a GPU engine): a frame and its host-made alpha up, blur, the
    masked frame down, timed per call on the host clock (synchronous). Against the CPU reference on the same data."""
    from realtime.compositor import make_compositor
    from realtime.pipeline.gpu import GpuComposite

    rng = np.random.default_rng()
    frame = rng.integers(1, 256, (*size, 3), np.uint8)
    alpha = np.zeros(size, np.float32)
    alpha[size[0] // 4:size[0] * 3 // 4, size[1] // 3:size[1] * 2 // 3] = 1.0  # a person-sized box
    composite, reference = GpuComposite(make_compositor("blur"), emulate=emulate), make_compositor("blur")
    gpu_ms, cpu_ms = [], []
    for _ in range(frames):
        start = time.perf_counter()
        image = composite(frame, alpha)
        gpu_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        expected = reference.composite(frame, alpha)
        cpu_ms.append((time.perf_counter() - start) * 1000)
    return {"gpu_composite": percentiles(gpu_ms[frames // 5:]), "cpu_reference": percentiles(cpu_ms[frames // 5:]),
            "max_diff": int(np.abs(image.astype(np.int32) - expected.astype(np.int32)).max())}


def strategies_1080p(data: Path, device: str = "cuda", frames: int = 100) -> dict[str, Any]:
    """Each inference strategy (issue 7) on the real clip scaled to 1080p, ms and model inputs per frame."""
    import engines
    from realtime.bench.people import time_strategies

    precision = "fp16" if device.startswith("cuda") else "fp32"
    engine = engines.load("mediapipe-selfie", backend="torch", device=device, precision=precision, cache=data / "cache")
    clip = [cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_LINEAR)
            for f in read_frames(data / "media" / "one-by-one-person-detection.mp4", frames)]
    time_strategies(engine, clip[:5])  # warm-up: CUDA graphs for each batch size the strategies use
    return {row.pop("strategy"): row for row in time_strategies(engine, clip)}


def pipeline_bench(data: Path, out_dir: Path, emulate: bool = False) -> dict[str, Any]:
    """``realtime-mask bench`` through the whole pipeline (capture thread, the GPU loop, sink) on the real clip scaled
    to 1080p, torch fp16 on CUDA at batch 1 and 4, then four copies at once (``--streams 4 --batches 4``): the
    per-stage and end-to-end figures a user's bench command gives (plots and summary.md in ``out_dir``).
    ``emulate``: the same runs, tiny, through the emulated GPU loop."""
    from realtime.bench import run_benchmark
    from realtime.bench.matrix import matrix_from
    from realtime.pipeline.runner import EMULATE_GPU_ENV

    clip = data / "media" / "one-by-one-person-detection.mp4"
    values = {"source": str(clip) if clip.is_file() else "synthetic:640x360@30", "warmup": 20, "frames": 150,
              "backends": "torch", "devices": "cuda", "precisions": "fp16", "modes": "blur",
              "resolutions": "1920x1080", "batches": "1,4"}
    if emulate:
        values |= {"warmup": 2, "frames": 6, "devices": "cpu", "precisions": "fp32", "resolutions": "320x180"}
    os.environ[EMULATE_GPU_ENV] = "1" if emulate else "0"
    try:
        document = run_benchmark(matrix_from(values), out_dir, "gpu_check.py pipeline_bench")
        streams = run_benchmark(matrix_from(values | {"streams": "4", "batches": "4"}), out_dir / "streams",
                                "gpu_check.py pipeline_bench, 4 streams at once")
    finally:
        os.environ.pop(EMULATE_GPU_ENV)
    document["results"] += streams["results"]
    keys = ("throughput_fps", "frames", "dropped", "gpu_mem_mb", "load_s", "end_to_end", "stages")
    return {r["label"]: {key: r[key] for key in keys} for r in document["results"]}


GPU_TEST_FILES = ("tests/realtime/test_cuda_kernels.py", "tests/realtime/test_gpu_stage.py",
                  "tests/engines/test_torch_backend.py", "tests/engines/test_tensorrt_backend.py")


def gpu_tests(data: Path, timeout_s: float = 150.0) -> dict[str, Any]:
    """The test suite's GPU cases (``pytest -m gpu``: the kernels, the GPU stage and the pipeline's GPU loop against
    the CPU path on real clips, the torch engine's CUDA graphs, TensorRT where it imports), with ``data`` as the
    shared folder. Without a GPU they all skip (this checks the plumbing)."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"skipped": "pytest does not import here"}
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "REALTIME_MASK_SHARED": str(data), "REALTIME_MASK_CACHE": str(data / "cache")}
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-rfEs", *GPU_TEST_FILES]
    try:
        result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"pytest -m gpu ran past {timeout_s:g} s", "tail": str(exc.stdout or "")[-4000:]}
    lines = result.stdout.strip().splitlines()
    out = {"returncode": result.returncode, "summary": lines[-1] if lines else result.stderr[-500:],
           "pass": result.returncode == 0}
    if result.returncode != 0:
        out["tail"] = (result.stdout + result.stderr)[-6000:]
    return out


def tensorrt_path(data: Path) -> dict[str, Any]:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return {"skipped": "tensorrt does not import here"}
    return gpu_latency(data, backend="tensorrt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", help="copy models/reference/clips into this folder and stop")
    parser.add_argument("--data", default=".device-cache")
    parser.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_check.json"))
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="start no part after this many seconds, so the run stays under 5 minutes (default: 240)")
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare))
        return
    data = Path(args.data).resolve()
    os.environ.setdefault("REALTIME_MASK_CACHE", str(data / "cache"))
    results: dict[str, Any] = {"machine": machine_info()}
    import torch

    from realtime.compositor.cuda import compile_kernels, kernel_resources

    out = Path(args.out)
    arch = "sm_{}{}".format(*torch.cuda.get_device_capability()) if torch.cuda.is_available() else "sm_90"
    section(results, f"compile_{arch}", lambda: {"cubin_bytes": len(compile_kernels(arch)),
                                                 "kernel_resources": kernel_resources(arch)}, out)
    if not torch.cuda.is_available():
        from realtime.compositor.emulator import HostKernels

        results["gpu"] = None
        print("no CUDA GPU: ran the CPU-side parts only", file=sys.stderr)
        section(results, "kernel_equality_host_emulated",
                lambda: kernel_equality(data, HostKernels(), ((137, 251), (360, 640))), out)
        section(results, "gpu_stages_host_emulated", lambda: gpu_latency(
            data, backend="torch", emulate=True, sizes=((144, 176),), batches=(1, 3), iterations=6, rounds=3), out)
        section(results, "host_mask_composite_host_emulated",
                lambda: host_mask_composite(emulate=True, size=(144, 176), frames=5), out)
        section(results, "gpu_tests", lambda: gpu_tests(data), out)
        section(results, "pipeline_bench_host_emulated",
                lambda: pipeline_bench(data, out.parent / "bench-emulated", emulate=True), out)
    else:
        from realtime.compositor.cuda import DeviceKernels

        results["gpu"] = torch.cuda.get_device_name()
        section(results, "kernel_equality", lambda: kernel_equality(
            data, DeviceKernels(), ((1080, 1920), (2160, 3840), (137, 251))), out)
        section(results, "fp16_masks_vs_mediapipe", lambda: fp16_masks(data), out)
        section(results, "naive_chain_1080p", naive_chain, out)
        section(results, "blur_composite_1080p", blur_bandwidth, out)
        section(results, "gpu_stages_torch_fp16", lambda: gpu_latency(data), out)
        section(results, "host_mask_composite_1080p", host_mask_composite, out)
        section(results, "pipeline_bench_1080p", lambda: pipeline_bench(data, out.parent / "bench-1080p"), out,
                args.budget_s)
        # the suite's GPU cases get what is left of the budget (and a minute past it), so the run stays near 5 minutes
        section(results, "gpu_tests", lambda: gpu_tests(data, max(60.0, args.budget_s + 60 - (time.monotonic() - STARTED))),
                out, args.budget_s)
        section(results, "strategies_1080p_torch_fp16", lambda: strategies_1080p(data), out, args.budget_s)
        section(results, "tensorrt", lambda: tensorrt_path(data), out, args.budget_s)
        # last, as the slowest (a compile per batch size): the torch engine compiled by TorchInductor
        section(results, "fp16_masks_torch_compile", lambda: fp16_masks(data, "torch-compile"), out, args.budget_s)
        section(results, "gpu_stages_torch_compile_fp16", lambda: gpu_latency(data, backend="torch-compile"), out,
                args.budget_s)
    def status(value: Any) -> str:
        return next((word for word in ("error", "skipped") if isinstance(value, dict) and word in value), "ok")

    print(json.dumps({k: v if k == "gpu" else status(v) for k, v in results.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
