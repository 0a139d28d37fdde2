"""How much of what the model calls person mask post-processing leaves not fully masked: the moving average
(``--smooth``) and the feather (``--feather``), with the plain rules (``--no-privacy``, and every run before
2026-11-30) and with privacy's fail-closed ones.

Input: the raw masks of a clip, as ``realtime-mask masks CLIP -o MASKS.npz`` writes them (uint8, round(255 p)).
A pixel "called person" has p >= 0.5 in its own frame; it leaks when its alpha is below 1.

Usage:
    realtime-mask masks ../shared/media/one-by-one-person-detection.mp4 -o /tmp/obo.npz
    python benchmarks/privacy_leaks.py /tmp/obo.npz [--out benchmarks/results/privacy-leaks.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.bench.machine import machine_info
from realtime.compositor import MaskPostprocessor, MaskSettings


def smoothing(masks: np.ndarray, ema_alpha: float, fail_closed: bool) -> dict[str, float]:
    """Frames where some pixel called person is not masked, and the worst such frame's unmasked share of them."""
    post = MaskPostprocessor(MaskSettings(ema_alpha=ema_alpha, fail_closed=fail_closed))
    frames, worst = 0, 0.0
    for mask in masks:
        probability = mask.astype(np.float32) / 255.0
        person = probability >= 0.5
        shown = person & (post(probability) < 1.0)
        if shown.any():
            frames += 1
            worst = max(worst, float(shown.sum() / person.sum()))
    return {"frames_with_person_pixels_unmasked": frames, "worst_share_of_person_unmasked": round(worst, 4)}


def feathering(masks: np.ndarray, feather_px: int, fail_closed: bool, step: int) -> dict[str, float]:
    """Share of the pixels called person (over every ``step``-th frame) whose alpha is below 1."""
    post = MaskPostprocessor(MaskSettings(feather_px=feather_px, fail_closed=fail_closed))
    person_px = below_px = 0
    for mask in masks[::step]:
        probability = mask.astype(np.float32) / 255.0
        person = probability >= 0.5
        person_px += int(person.sum())
        below_px += int((post(probability)[person] < 1.0).sum())
    return {"share_of_person_not_fully_masked": round(below_px / max(person_px, 1), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("masks", help="a .npz written by realtime-mask masks")
    parser.add_argument("--step", type=int, default=5, help="feather: every N-th frame (default: 5)")
    parser.add_argument("--out", default="benchmarks/results/privacy-leaks.json")
    args = parser.parse_args()
    masks = np.load(args.masks)["masks"]
    rows = []
    for fail_closed in (False, True):
        for ema_alpha in (0.3, 0.7):
            rows.append({"smooth": ema_alpha, "fail_closed": fail_closed, "frames": len(masks),
                         **smoothing(masks, ema_alpha, fail_closed)})
            print(rows[-1])
        for feather_px in (8, 16):
            rows.append({"feather": feather_px, "fail_closed": fail_closed, "frames": len(masks[::args.step]),
                         **feathering(masks, feather_px, fail_closed, args.step)})
            print(rows[-1])
    result = {"command": " ".join(["python", *sys.argv]), "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
              "masks": Path(args.masks).name, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
