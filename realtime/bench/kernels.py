"""Hold the CUDA compositor's kernels against the CPU reference (tests and ``benchmarks/gpu_check.py``).

Example:
    >>> import numpy as np
    >>> from realtime.compositor import MaskSettings
    >>> from realtime.compositor.emulator import HostKernels
    >>> frames = [np.random.default_rng(0).integers(1, 256, (37, 61, 3), np.uint8)]
    >>> result = compare_kernels(HostKernels(), "blur", {}, MaskSettings(), frames, [np.full((8, 8), 0.7, np.float32)])
    >>> result["max_diff"]
    0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from realtime.compositor import MaskPostprocessor, MaskSettings, make_compositor
from realtime.compositor.cuda import CudaCompositor


def compare_kernels(launcher: Any, mode: str, options: dict[str, Any], settings: MaskSettings,
                    frames: Sequence[np.ndarray], probabilities: Sequence[np.ndarray],
                    at: Sequence[float] | None = None) -> dict[str, Any]:
    """Composite ``frames`` (one stream, in order) with the kernels — the first alone, the others as one batch —
    and with the CPU reference.

    The reference is fed the kernels' own upsampled probability (itself compared with ``cv2.resize``),
    so that a pixel whose probability lies within float rounding of the threshold cannot flip one way
    in one and the other way in the other — such a flip changes a whole dilated, feathered patch.

    Args:
        launcher: :class:`realtime.compositor.cuda.DeviceKernels` (a GPU) or
            :class:`realtime.compositor.emulator.HostKernels` (the CPU).
        mode, options: the masking mode and its options, as for :func:`make_compositor`.
        settings: mask post-processing.
        frames: uint8 HxWx3 frames of one size; probabilities: float32 hxw model outputs, one per frame.
        at: each frame's time in seconds (a background video shows its frame of that moment); default: none.

    Returns:
        ``max_diff`` (largest per-channel difference), ``share_over_1`` (share of values off by more
        than 1), ``upsample_max_error`` (kernel upsampling vs ``cv2.resize``), ``frames``.
    """
    import torch

    reference = make_compositor(mode, **options)
    kernels = CudaCompositor(make_compositor(mode, **options), settings, launcher=launcher)
    post = MaskPostprocessor(settings)
    device = launcher.torch_device
    height, width = frames[0].shape[:2]
    # the first frame alone, (H, W, 3); the rest as one (n, H, W, 3) batch, one launch a kernel; one stream throughout
    upsampled = torch.empty((len(frames), height, width), dtype=torch.float32, device=device)
    times: list[float | None] = list(at) if at is not None else [None] * len(frames)
    first, _ = kernels(torch.from_numpy(frames[0]).to(device), torch.from_numpy(probabilities[0]).to(device),
                       probability_out=upsampled[0], at=None if at is None else at[:1])
    got_frames = [first.cpu().numpy()]
    if len(frames) > 1:
        rest, _ = kernels(torch.from_numpy(np.stack(frames[1:])).to(device),
                          torch.from_numpy(np.stack(probabilities[1:])).to(device), probability_out=upsampled[1:],
                          at=None if at is None else at[1:])
        got_frames += list(rest.cpu().numpy())
    upsampled_frames = list(upsampled.cpu().numpy())
    worst, over_1, upsample_error = 0, 0.0, 0.0
    for frame, probability, got, upsampled_np, moment in zip(frames, probabilities, got_frames, upsampled_frames, times,
                                                              strict=True):
        resized = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        upsample_error = max(upsample_error, float(np.abs(upsampled_np - resized).max()))
        expected = reference.composite(frame, post(upsampled_np), moment)
        if got.shape != expected.shape:
            raise AssertionError(f"{mode}: kernels gave {got.shape}, the reference {expected.shape}")
        diff = np.abs(got.astype(np.int32) - expected.astype(np.int32))
        worst, over_1 = max(worst, int(diff.max())), max(over_1, float(np.mean(diff > 1)))
    return {"max_diff": worst, "share_over_1": over_1, "upsample_max_error": upsample_error, "frames": len(frames)}
