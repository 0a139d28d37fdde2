"""Whole-pipeline throughput on the CPU: decode → infer → blur → encode, per-stage table, machine recorded.

Usage:
    python benchmarks/pipeline.py [--clip ../shared/media/one-by-one-person-detection.mp4] [--batch 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.bench.machine import machine_info
from realtime.pipeline import Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--clip", default=str(shared / "media/one-by-one-person-detection.mp4"))
    parser.add_argument("--mode", default="blur")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--out", default="benchmarks/results/pipeline-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(args.clip, mode=args.mode, output=f"{tmp}/out.mp4", batch=args.batch, backend=args.backend)
        stats = pipeline.run()
    print(stats.table())
    document = {"machine": machine_info(), "command": " ".join(sys.argv), **stats.as_dict()}
    Path(args.out).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
