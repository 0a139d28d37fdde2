"""Agreement of our masks with MediaPipe's own (../shared/reference), per clip, model and backend.

Usage:
    python benchmarks/accuracy.py [--shared ../shared] [--out benchmarks/results/accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engines
from engines.metrics import compare_masks
from engines.preprocess import probability_to_uint8
from realtime.bench.machine import machine_info
from realtime.capture.files import read_frames

CLIPS = ["carphone_pristine.mp4", "head-pose-face-detection-female-and-male.gif", "one-by-one-person-detection.mp4",
         "car-detection.mp4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--backends", default="onnxruntime,torch")
    parser.add_argument("--precisions", default="fp32,fp16")
    parser.add_argument("--out", default="benchmarks/results/accuracy.json")
    args = parser.parse_args()
    shared = Path(args.shared)
    rows = []
    for clip in CLIPS:
        for index, model in enumerate(("mediapipe-selfie", "mediapipe-selfie-landscape")):
            reference = np.load(shared / "reference" / f"{clip.rsplit('.', 1)[0]}.model{index}.npz")["masks"]
            frames = read_frames(shared / "media" / clip, len(reference))
            for backend in args.backends.split(","):
                for precision in args.precisions.split(","):
                    if backend == "torch" and precision == "fp16":
                        continue  # fp16 torch needs CUDA
                    with engines.load(model, backend=backend, precision=precision) as engine:
                        masks = np.stack([probability_to_uint8(p) for p in engine.predict_batch(frames)])
                    rows.append({"clip": clip, "model": model, "backend": backend, "precision": precision,
                                 **compare_masks(masks, reference)})
                    print(json.dumps(rows[-1]), file=sys.stderr)
    Path(args.out).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=1) + "\n")
    print("| clip | model | backend | precision | mean IoU (frames) | max fg on empty frames | mean abs diff |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        iou = f"{r['mean_iou']:.4f} ({int(r['iou_frames'])})" if r["iou_frames"] else "– (0)"
        print(f"| {r['clip']} | {r['model']} | {r['backend']} | {r['precision']} | {iou} | "
              f"{100 * r['max_empty_foreground']:.3f}% ({int(r['empty_frames'])}) | {r['mean_abs_diff']:.5f} |")


if __name__ == "__main__":
    main()
