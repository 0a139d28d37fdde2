"""Mask inference per frame, per backend and model, on the frames MediaPipe's reference used; MediaPipe beside it.

Times what MediaPipe's ``process()`` does: frame in, probability at frame size out (preprocess +
inference + resize back), one frame at a time. Median and p90 per configuration, machine recorded.

Usage:
    python benchmarks/inference.py [--clips DIR] [--mediapipe] [--out benchmarks/results/inference.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engines
from realtime.bench.machine import machine_info
from realtime.capture.files import read_frames

CLIPS = ["head-pose-face-detection-female-and-male.gif", "one-by-one-person-detection.mp4", "carphone_pristine.mp4"]
MODELS = [("mediapipe-selfie", 0), ("mediapipe-selfie-landscape", 1)]




def summarise(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {"frames": int(ms.size), "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(ms.mean())}


def time_engine(engine: engines.Engine, frames: list[np.ndarray], warmup: int) -> list[float]:
    for frame in frames[:warmup]:
        engine.predict(frame)
    seconds = []
    for frame in frames:
        start = time.perf_counter()
        engine.predict(frame)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=str(Path(__file__).resolve().parents[2] / "shared" / "media"))
    parser.add_argument("--backends", default="onnxruntime,torch")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--mediapipe", action="store_true", help="also time MediaPipe's own runtime (own venv)")
    parser.add_argument("--out", default="benchmarks/results/inference.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    results = {"machine": machine_info(), "command": " ".join(sys.argv), "rows": rows}
    for clip in CLIPS:
        frames = read_frames(Path(args.clips) / clip, 120)  # the frames MediaPipe's reference used
        height, width = frames[0].shape[:2]
        for model, selection in MODELS:
            row_base = {"clip": clip, "resolution": f"{width}x{height}", "model": model}
            mediapipe = None
            if args.mediapipe:
                from realtime.bench.mediapipe_side import mediapipe_times

                rgb = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames])
                mediapipe = summarise(mediapipe_times(rgb, selection, args.warmup)["mask_s"])
                rows.append({**row_base, "backend": "mediapipe (own runtime)", **mediapipe})
            for backend in args.backends.split(","):
                with engines.load(model, backend=backend) as engine:
                    stats = summarise(time_engine(engine, frames, args.warmup))
                if mediapipe:
                    stats["ratio_to_mediapipe"] = stats["median_ms"] / mediapipe["median_ms"]
                rows.append({**row_base, "backend": backend, **stats})
                print(json.dumps(rows[-1]), file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print("| clip | model | backend | median ms | p90 ms | vs MediaPipe |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ratio = f"{row['ratio_to_mediapipe']:.2f}x" if "ratio_to_mediapipe" in row else ""
        print(f"| {row['clip']} ({row['resolution']}) | {row['model']} | {row['backend']} | "
              f"{row['median_ms']:.2f} | {row['p90_ms']:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
