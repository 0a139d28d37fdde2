"""Mask post-processing: raw person probability in, compositing alpha out (CPU reference).

The steps, in this order, define what the CUDA kernels must reproduce:

1. **temporal smoothing** — exponential moving average on the probability at frame resolution:
   ``m_t = a * p_t + (1 - a) * m_(t-1)``, ``m_0 = p_0`` (``ema_alpha = 1`` turns it off; the state
   restarts when the frame size changes). With ``ema_fail_closed`` (the pipeline sets it when privacy is
   on) the average never delays a mask: where ``p_t`` masks more than the average would — above it for
   ``target = "person"``, below it for ``"background"`` — ``m_t = p_t``; it only holds a mask on after
   the model stops seeing it, and the held value decays from there;
2. **threshold** — ``masked = m_t >= threshold`` (a NaN counts as masked: fail-closed);
3. **target** — with ``target = "background"`` the masked side flips: ``masked = not masked``;
4. **dilation** — the masked region grows by ``dilate_px`` pixels (binary dilation with a disc of
   that radius: ``cv2.getStructuringElement(MORPH_ELLIPSE, (2r+1, 2r+1))``), the privacy margin;
5. **feather** — ``alpha`` = mean of the binary mask over a ``(2f+1) x (2f+1)`` box
   (``cv2.blur``, replicated border) for ``feather_px = f > 0``; else ``alpha`` is the binary mask.

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
        ema_fail_closed: the moving average never masks less than the newest probability (see step 1).
    """

    threshold: float = 0.5
    target: str = "person"
    dilate_px: int = 0
    feather_px: int = 0
    ema_alpha: float = 1.0
    ema_fail_closed: bool = False

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


class MaskPostprocessor:
    """Stateful (for the moving average) probability → alpha conversion; one per stream."""

    def __init__(self, settings: MaskSettings) -> None:
        self.settings = settings
        self.smoothed: np.ndarray | None = None
        self._kernel = (cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * settings.dilate_px + 1,) * 2)
                        if settings.dilate_px else None)

    def smooth(self, probability: np.ndarray) -> np.ndarray:
        """Step 1: the moving average (returns the probability itself when smoothing is off)."""
        alpha = self.settings.ema_alpha
        if alpha >= 1.0:
            return probability
        if self.smoothed is None or self.smoothed.shape != probability.shape:
            self.smoothed = probability.astype(np.float32, copy=True)
        else:
            smoothed = alpha * probability + (1.0 - alpha) * self.smoothed
            if self.settings.ema_fail_closed:  # where the newest probability masks more, it wins (NaN: the average)
                sooner = probability < smoothed if self.settings.target == "background" else probability > smoothed
                smoothed = np.where(sooner, probability, smoothed)
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
