"""Mask post-processing: raw person probability in, compositing alpha out (CPU reference).

The steps, in this order, define what the CUDA kernels must reproduce:

1. **temporal smoothing** — exponential moving average on the probability at frame resolution:
   ``m_t = a * p_t + (1 - a) * m_(t-1)``, ``m_0 = p_0`` (``ema_alpha = 1`` turns it off; the state
   restarts when the frame size changes). With ``fail_closed`` (the pipeline sets it when privacy is
   on: neither smoothing nor feathering may unmask what the newest probability masks) the average never
   delays a mask: where ``p_t`` masks more than the average would — above it for
   ``target = "person"``, below it for ``"background"`` — ``m_t = p_t``; it only holds a mask on after
   the model stops seeing it, and the held value decays from there;
2. **threshold** — ``masked = m_t >= threshold`` (a NaN counts as masked: fail-closed);
3. **target** — with ``target = "background"`` the masked side flips: ``masked = not masked``;
4. **dilation** — the masked region grows by ``dilate_px`` pixels (binary dilation with a disc of
   that radius: ``cv2.getStructuringElement(MORPH_ELLIPSE, (2r+1, 2r+1))``), the privacy margin; with
   ``fail_closed`` and a feather ``f``, by that disc grown by a ``(2f+1) x (2f+1)`` square (their
   Minkowski sum, :func:`dilation_halfwidths`), so that the feather lies outside what is masked;
5. **feather** — ``alpha`` = mean of the binary mask over a ``(2f+1) x (2f+1)`` box
   (``cv2.blur``, replicated border) for ``feather_px = f > 0``; else ``alpha`` is the binary mask.
   With ``fail_closed`` every pixel the threshold and the disc mask keeps ``alpha = 1`` (its box lies
   in the grown mask); without, the feather also softens inwards, down to 0.5 at the mask's edge.

Example:
    >>> import numpy as np
    >>> post = MaskPostprocessor(MaskSettings(threshold=0.5))
    >>> post(np.array([[0.2, 0.7]], np.float32)).tolist()
    [[0.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.errors import ConfigError, InputShapeError

TARGETS = ("person", "background")


@dataclass(frozen=True)
class MaskSettings:
    """How a probability becomes a compositing alpha.

    Args:
        threshold: probability at or above which a pixel is the target class, in (0, 1).
        target: ``"person"`` masks the people, ``"background"`` masks everything else.
        dilate_px: grow the masked region by this many pixels (privacy margin), >= 0.
        feather_px: soften the edge over this many pixels, >= 0.
        ema_alpha: weight of the newest probability in the moving average, in (0, 1]; 1 = off.
        fail_closed: smoothing and feathering never mask less than the newest probability (steps 1, 4, 5).
    """

    threshold: float = 0.5
    target: str = "person"
    dilate_px: int = 0
    feather_px: int = 0
    ema_alpha: float = 1.0
    fail_closed: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.target not in TARGETS:
            raise ConfigError(f"target must be person or background, got {self.target!r}")
        if self.dilate_px < 0 or self.dilate_px > 500:
            raise ConfigError(f"dilation must be 0..500 pixels, got {self.dilate_px}")
        if self.feather_px < 0 or self.feather_px > 500:
            raise ConfigError(f"feather must be 0..500 pixels, got {self.feather_px}")
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ConfigError(f"smoothing alpha must be in (0, 1], got {self.ema_alpha} (1 turns smoothing off)")


def ellipse_halfwidths(radius: int) -> np.ndarray:
    """Per-row half widths of OpenCV's MORPH_ELLIPSE element of that radius (-1: empty row).

    Example:
        >>> ellipse_halfwidths(2).tolist()
        [0, 2, 2, 2, 0]
    """
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    widths = element.sum(axis=1).astype(np.int32)
    return np.where(widths > 0, (widths - 1) // 2, -1).astype(np.int32)


def dilation_halfwidths(settings: MaskSettings) -> np.ndarray | None:
    """Per-row half widths (rows ``-R..R``; -1: empty) of step 4's structuring element, None when there is no dilation:
    the disc of ``dilate_px``, grown with ``fail_closed`` by the feather's ``(2f+1)`` square — row ``dy`` of the sum
    is the disc's row ``max(0, |dy| - f)`` widened by ``f``.

    Example:
        >>> dilation_halfwidths(MaskSettings(dilate_px=1, feather_px=2, fail_closed=True)).tolist()
        [2, 3, 3, 3, 3, 3, 2]
    """
    grow = settings.feather_px if settings.fail_closed else 0
    if settings.dilate_px == 0 and grow == 0:
        return None
    disc = ellipse_halfwidths(settings.dilate_px)
    rows = [disc[settings.dilate_px + max(0, abs(dy) - grow)] for dy in range(-settings.dilate_px - grow,
                                                                              settings.dilate_px + grow + 1)]
    return np.array([half + grow if half >= 0 else -1 for half in rows], np.int32)


def structuring_element(halfwidths: np.ndarray) -> np.ndarray:
    """The uint8 (2R+1) x (2R+1) element whose row ``dy`` spans ``-halfwidths[dy]..halfwidths[dy]`` about the centre."""
    radius = len(halfwidths) // 2
    element = np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8)
    for row, half in enumerate(halfwidths):
        if half >= 0:
            element[row, radius - half:radius + half + 1] = 1
    return element


class MaskPostprocessor:
    """Stateful (for the moving average) probability → alpha conversion; one per stream."""

    def __init__(self, settings: MaskSettings) -> None:
        self.settings = settings
        self.smoothed: np.ndarray | None = None
        halfwidths = dilation_halfwidths(settings)
        self._kernel = None if halfwidths is None else structuring_element(halfwidths)

    def smooth(self, probability: np.ndarray) -> np.ndarray:
        """Step 1: the moving average (returns the probability itself when smoothing is off)."""
        alpha = self.settings.ema_alpha
        if alpha >= 1.0:
            return probability
        if self.smoothed is None or self.smoothed.shape != probability.shape:
            self.smoothed = probability.astype(np.float32, copy=True)
        else:
            smoothed = alpha * probability + (1.0 - alpha) * self.smoothed
            if self.settings.fail_closed:  # where the newest probability masks more, it wins (a NaN stays: masked)
                wins = np.minimum if self.settings.target == "background" else np.maximum
                wins(smoothed, probability, out=smoothed)
            self.smoothed = smoothed
        return self.smoothed

    def binary(self, probability: np.ndarray) -> np.ndarray:
        """Steps 1-4: uint8 mask, 1 where the frame is to be masked."""
        if probability.ndim != 2 or probability.dtype != np.float32:
            raise InputShapeError(f"probability must be float32 HxW, got {probability.shape} {probability.dtype}")
        smoothed = self.smooth(probability)
        masked = ~(smoothed < self.settings.threshold)  # not "p >= threshold": a NaN pixel counts as masked
        if self.settings.target == "background":
            masked = ~masked
        binary: np.ndarray = masked.view(np.uint8)
        if self._kernel is not None:
            binary = cv2.dilate(binary, self._kernel)
        return binary

    def __call__(self, probability: np.ndarray) -> np.ndarray:
        """Steps 1-5: float32 alpha in [0, 1], 1 where the frame is fully masked."""
        binary = self.binary(probability)
        alpha: np.ndarray = binary.astype(np.float32)
        feather = self.settings.feather_px
        if feather:
            alpha = cv2.blur(alpha, (2 * feather + 1, 2 * feather + 1), borderType=cv2.BORDER_REPLICATE)
        return alpha

    def reset(self) -> None:
        """Forget the moving average (e.g. after a scene cut or a reconnect)."""
        self.smoothed = None
