"""Cost of ``--save-masks`` / ``realtime-mask masks``: ms to add a mask, seconds to close the archive, peak memory.

Real masks (MediaPipe's reference for the surveillance clip) upscaled to the chosen size, added N times.

Usage:
    python benchmarks/mask_archive.py [--size 1920x1080] [--count 300] [--out benchmarks/results/mask-archive.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.bench.machine import machine_info
from realtime.outputs.mask_archive import MaskArchive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--reference", default=str(shared / "reference/one-by-one-person-detection.model0.npz"))
    parser.add_argument("--size", default="1920x1080", help="WxH of the masks")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/mask-archive.json")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    reference = np.load(args.reference)["masks"]
    masks = [cv2.resize(reference[i], (width, height)) for i in range(60, 120, 6)]  # frames with people
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "masks.npz"
        tracemalloc.start()
        started = time.perf_counter()
        archive = MaskArchive(path)
        for index in range(args.count):
            archive.add(masks[index % len(masks)])
        added = time.perf_counter()
        archive.close()
        closed = time.perf_counter()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        size = path.stat().st_size
    result = {
        "machine": machine_info(), "command": "python " + " ".join(sys.argv), "size": args.size, "count": args.count,
        "add_ms_per_mask": (added - started) / args.count * 1e3, "close_s": closed - added,
        "peak_traced_mb": peak / 1e6, "held_in_memory_mb": args.count * width * height / 1e6, "file_mb": size / 1e6,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.count} masks {args.size}: add {result['add_ms_per_mask']:.2f} ms each, close {result['close_s']:.2f} s, "
          f"peak {result['peak_traced_mb']:.1f} MB (all held: {result['held_in_memory_mb']:.0f} MB), "
          f"file {result['file_mb']:.1f} MB")


if __name__ == "__main__":
    main()
