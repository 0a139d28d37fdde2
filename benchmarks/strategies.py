"""Milliseconds per frame of each inference strategy on a real clip (CPU), with skipped frames.

Usage:
    python benchmarks/strategies.py [--clip ../shared/media/one-by-one-person-detection.mp4] [--frames 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engines
from engines.strategies import InferenceStrategy, StrategySettings
from realtime.bench.machine import machine_info
from realtime.bench.people import time_strategies
from realtime.capture.files import read_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--clip", default=str(shared / "media/one-by-one-person-detection.mp4"))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the frames (a new stream each time)")
    parser.add_argument("--out", default="benchmarks/results/strategies-cpu.json")
    args = parser.parse_args()
    frames = read_frames(args.clip, args.frames)
    engine = engines.load("mediapipe-selfie")
    rows = time_strategies(engine, frames, args.rounds)
    # what motion-ROI weighs against each other: its motion pass, and the model call it can skip
    probe = InferenceStrategy(engine, StrategySettings.preset("motion-roi"))
    full = (0, frames[0].shape[0], 0, frames[0].shape[1])
    motion_ms, model_ms = [], []
    for frame in frames:
        start = time.perf_counter()
        probe._motion_boxes(frame)
        middle = time.perf_counter()
        probe._infer_crops(frame, [full])
        motion_ms.append((middle - start) * 1000.0)
        model_ms.append((time.perf_counter() - middle) * 1000.0)
    parts = {"motion_pass_ms_mean": float(np.mean(motion_ms)), "model_call_ms_mean": float(np.mean(model_ms))}
    result = {"machine": machine_info(), "command": " ".join(sys.argv), "clip": args.clip, "rows": rows, **parts}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames x {args.rounds} rounds")
    print("| strategy | mean ms | p50 ms | p90 ms | skipped frames | model inputs per frame |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strategy']} | {r['mean_ms']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['skipped']} | "
              f"{r['model_inputs_per_frame']:.2f} |")
    print(f"motion pass {parts['motion_pass_ms_mean']:.2f} ms, one model call (preprocess, infer, resize) "
          f"{parts['model_call_ms_mean']:.2f} ms, means over {len(frames)} frames")


if __name__ == "__main__":
    main()
