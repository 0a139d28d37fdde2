"""Recall against false foreground for the surveillance preset's knobs, on the synthetic far-people set.

Each row changes one setting of the preset (confidence, false-foreground control, privacy union) and
reports recall, silhouette IoU and false foreground for people 10-20% and 5-10% of the frame height.

Usage:
    python benchmarks/surveillance_tradeoff.py [--shared ../shared] [--out benchmarks/results/surveillance-tradeoff.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engines
from engines.strategies import StrategySettings
from realtime.bench.machine import machine_info
from realtime.bench.people import build_far_people, evaluate

VARIANTS: dict[str, dict[str, Any]] = {
    "preset (confidence 0.3, control on)": {},
    "confidence 0.5": {"confidence": 0.5},
    "confidence 0.2": {"confidence": 0.2},
    "control off (no min region, no persistence)": {"min_region": 0.0, "persistence": 1},
    "--privacy-union motion": {"privacy_union_motion": True},
}
HEIGHTS = ((0.10, 0.20), (0.05, 0.10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--out", default="benchmarks/results/surveillance-tradeoff.json")
    args = parser.parse_args()
    engine = engines.load("mediapipe-selfie")
    rows = []
    for heights in HEIGHTS:
        dataset = build_far_people(Path(args.shared), heights)
        for label, overrides in VARIANTS.items():
            result = evaluate(engine, dataset, StrategySettings.preset("surveillance", **overrides))
            rows.append({"variant": label, "heights": list(heights), **result})
    Path(args.out).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=1) + "\n")
    print("| variant | people | recall | silhouette IoU | false fg (mean / p95) |")
    print("|---|---|---|---|---|")
    for r in rows:
        low, high = r["heights"]
        print(f"| {r['variant']} | {low:.0%}-{high:.0%} | {r['recall']:.1%} | {r['silhouette_iou']:.3f} | "
              f"{r['false_foreground_mean']:.2%} / {r['false_foreground_p95']:.2%} |")


if __name__ == "__main__":
    main()
