"""Milliseconds per frame of each inference strategy on a real clip (CPU), with skipped frames.

Usage:
    python benchmarks/strategies.py [--clip ../shared/media/one-by-one-person-detection.mp4] [--frames 300]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engines
from engines.strategies import STRATEGIES, InferenceStrategy, StrategySettings
from realtime.bench.machine import machine_info
from realtime.capture.files import read_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--clip", default=str(shared / "media/one-by-one-person-detection.mp4"))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/strategies-cpu.json")
    args = parser.parse_args()
    frames = read_frames(args.clip, args.frames)
    engine = engines.load("mediapipe-selfie")
    strategies = {name: InferenceStrategy(engine, StrategySettings.preset(name)) for name in STRATEGIES}
    for frame in frames:  # interleaved: the machine's slow and fast moments fall on every strategy alike
        for strategy in strategies.values():
            strategy(frame)
    rows = []
    for name, strategy in strategies.items():
        ms = np.asarray(strategy.stats.ms)
        rows.append({"strategy": name, "frames": len(ms), "mean_ms": float(ms.mean()), "p50_ms": float(np.median(ms)),
                     "p90_ms": float(np.percentile(ms, 90)), "skipped": strategy.stats.skipped,
                     "engine_crops": strategy.stats.engine_crops})
    Path(args.out).write_text(json.dumps({"machine": machine_info(), "clip": args.clip, "rows": rows}, indent=1) + "\n")
    print(f"{frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames")
    print("| strategy | mean ms | p50 ms | p90 ms | skipped frames | engine crops |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strategy']} | {r['mean_ms']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['skipped']} | "
              f"{r['engine_crops']} |")


if __name__ == "__main__":
    main()
