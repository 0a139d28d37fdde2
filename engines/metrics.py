"""Agreement between two mask archives (ours vs. MediaPipe's reference).

Example:
    >>> import numpy as np
    >>> a = np.zeros((2, 4, 4), np.uint8); a[:, :2] = 255
    >>> compare_masks(a, a)["mean_iou"]
    1.0
"""

from __future__ import annotations

import numpy as np

from engines.errors import InputShapeError


def compare_masks(predicted: np.ndarray, reference: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Compare uint8 ``[N, H, W]`` mask stacks (``round(255 * p)``).

    Returns:
        ``mean_iou`` over frames whose reference foreground is >= 1% of the frame (NaN when none),
        ``iou_frames`` (how many such frames), ``max_empty_foreground`` (largest predicted foreground share
        on frames whose reference foreground is < 0.1%, 0 when none), ``empty_frames``,
        ``mean_abs_diff`` of probabilities and ``frames``.
    """
    if predicted.shape != reference.shape or predicted.dtype != np.uint8 or reference.dtype != np.uint8:
        raise InputShapeError(f"mask stacks must be uint8 of one shape, got {predicted.shape} {predicted.dtype} "
                              f"and {reference.shape} {reference.dtype}")
    cut = threshold * 255
    ious, empty = [], []
    diff = 0.0
    for pred, ref in zip(predicted, reference, strict=True):
        p, r = pred >= cut, ref >= cut
        share = r.mean()
        if share >= 0.01:
            ious.append((p & r).sum() / max((p | r).sum(), 1))
        elif share < 0.001:
            empty.append(p.mean())
        diff += np.abs(pred.astype(np.float32) - ref.astype(np.float32)).mean() / 255.0
    return {
        "frames": float(len(predicted)),
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
        "iou_frames": float(len(ious)),
        "max_empty_foreground": float(max(empty)) if empty else 0.0,
        "empty_frames": float(len(empty)),
        "mean_abs_diff": float(diff / max(len(predicted), 1)),
    }
