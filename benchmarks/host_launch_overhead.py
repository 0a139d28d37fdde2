"""The CUDA compositor's own Python per batch, without a GPU: the kernels' launches are replaced by no-ops, so
what is timed is the host work around them — a whole batch in one call (one launch a kernel, as ``GpuStage``
does) against the same frames one call at a time (a launch per kernel and frame). On a GPU each launch adds
cuda.core's own cost on top; ``gpu_check.py`` reports the host's ms per ``submit`` there.

Usage:
    python benchmarks/host_launch_overhead.py [--batch 16] [--size 1080x1920] [--rounds 300] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.spec import ModelSpec
from realtime.bench.machine import machine_info
from realtime.compositor import MaskSettings, make_compositor
from realtime.compositor.cuda import CudaCompositor, MovingAverage

SETTINGS = {"blur, dilate 4": MaskSettings(dilate_px=4),
            "blur, dilate 4, feather 3, smooth 0.5": MaskSettings(dilate_px=4, feather_px=3, ema_alpha=0.5)}


class CountedLaunches:
    """A launcher that only counts: CPU tensors, no kernel runs."""

    def __init__(self) -> None:
        import torch

        self.torch_device = torch.device("cpu")
        self.count = 0

    def __call__(self, name: str, config: Any, *args: Any) -> None:
        self.count += 1


def _batched(compositor: CudaCompositor, averages: list[MovingAverage], frames: Any, probabilities: Any, out: Any,
             model_in: Any, spec: ModelSpec) -> None:
    compositor.preprocess(frames, model_in, spec)
    compositor(frames, probabilities, out, averages=averages)


def _per_frame(compositor: CudaCompositor, averages: list[MovingAverage], frames: Any, probabilities: Any, out: Any,
               model_in: Any, spec: ModelSpec) -> None:
    for i in range(frames.shape[0]):
        compositor.preprocess(frames[i], model_in[i], spec)
        compositor(frames[i], probabilities[i], out[i], averages=[averages[i]])


def measure(batch: int, height: int, width: int, rounds: int) -> dict[str, Any]:
    """ms of Python per batch and launches per batch, batched vs one frame at a time, for each of SETTINGS."""
    import torch

    spec = ModelSpec(input_hw=(256, 256), resize="mediapipe")
    frames = torch.zeros((batch, height, width, 3), dtype=torch.uint8)
    data = (frames, torch.zeros((batch, 256, 256)), torch.empty_like(frames), torch.empty((batch, 3, 256, 256)), spec)
    results: dict[str, Any] = {}
    for label, settings in SETTINGS.items():
        launches = CountedLaunches()
        compositor = CudaCompositor(make_compositor("blur"), settings, launcher=launches)
        averages = [MovingAverage() for _ in range(batch)]
        row = {}
        for name, call in (("batched", _batched), ("per_frame", _per_frame)):
            for _ in range(max(rounds // 10, 1)):
                call(compositor, averages, *data)
            launches.count = 0
            began = time.perf_counter()
            for _ in range(rounds):
                call(compositor, averages, *data)
            row[name] = {"python_ms_per_batch": (time.perf_counter() - began) * 1000 / rounds,
                         "launches_per_batch": launches.count / rounds}
        results[label] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", default="1080x1920", help="HxW")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    report = {"machine": machine_info(), "batch": args.batch, "size": args.size, "rounds": args.rounds,
              "results": measure(args.batch, height, width, args.rounds)}
    for label, row in report["results"].items():
        print(f"{label}: " + ", ".join(f"{name} {r['python_ms_per_batch']:.3f} ms / {r['launches_per_batch']:.0f} launches"
                                       for name, r in row.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
