"""Masking modes — the CPU reference that the CUDA kernels must reproduce to ±1 per channel.

Every mode computes an *effect* image and blends it into the frame with the alpha from
:mod:`realtime.compositor.masks`:

    ``out = round(alpha * effect + (1 - alpha) * frame)`` per channel (``alpha`` in [0, 1]).

Only the bounding box of ``alpha > 0`` is touched: outside it the output equals the input
exactly, and the effect is computed on that box plus the margin its filter needs, so the
result is the same as computing it on the whole frame.

Effects:

* ``blur`` — two passes of a ``(2s+1) x (2s+1)`` box mean (``cv2.blur``, reflect-101 border,
  uint8 rounding after each pass): a tent filter of radius ``2s``; ``s`` = strength in pixels.
* ``pixelate`` — the frame cut into ``B x B`` blocks from the top-left corner (partial blocks at the
  right/bottom edges); every pixel becomes its block's mean, ``floor(sum / count + 0.5)``.
* ``fill`` — one BGR colour.
* ``replace`` — a background image or video (looped at its own speed), resized to the frame (bilinear).
* ``overlay`` — a tint: ``round((1 - o) * frame + o * colour)`` with opacity ``o``.
* ``cutout`` — ``bgra``: the frame with an alpha channel ``round(255 * (1 - alpha))`` (masked
  pixels transparent); ``green``: ``fill`` with pure green (a green screen).
* ``mask`` — the alpha itself as a grey BGR video, ``round(255 * alpha)``.

Example:
    >>> import numpy as np
    >>> frame = np.full((4, 4, 3), 100, np.uint8)
    >>> alpha = np.zeros((4, 4), np.float32); alpha[:2] = 1
    >>> out = FillCompositor((0, 0, 255)).composite(frame, alpha)
    >>> out[0, 0].tolist(), out[3, 3].tolist()
    ([0, 0, 255], [100, 100, 100])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from pathlib import Path

import cv2
import numpy as np

from engines.errors import ConfigError, InputShapeError
from realtime.compositor.background import Background

Box = tuple[int, int, int, int]  # y0, y1, x0, x1


def alpha_box(alpha: np.ndarray) -> Box | None:
    """Bounding box (y0, y1, x0, x1), end-exclusive, of ``alpha > 0``; None when nothing is masked."""
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def blend(frame: np.ndarray, effect: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``round(alpha * effect + (1 - alpha) * frame)`` for uint8 HxWx3 images and float32 HxW alpha."""
    if np.all((alpha == 0) | (alpha == 1)):
        return cv2.copyTo(effect, alpha.astype(np.uint8), frame.copy())
    return cv2.blendLinear(effect, frame, alpha, 1.0 - alpha)


def _check(frame: np.ndarray, alpha: np.ndarray) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputShapeError(f"frame must be uint8 HxWx3 (bgr), got {frame.shape} {frame.dtype}")
    if alpha.shape != frame.shape[:2] or alpha.dtype != np.float32:
        raise InputShapeError(f"alpha must be float32 {frame.shape[:2]}, got {alpha.shape} {alpha.dtype}")


class Compositor(ABC):
    """Turns a frame and an alpha into the masked frame (one method: :meth:`composite`).

    Attributes:
        name: the mode's name on the command line.
        default_target: which side this mode masks unless told (``person`` or ``background``).
        output_channels: 3 (BGR) or 4 (BGRA).
    """

    name = ""
    default_target = "person"
    output_channels = 3

    @abstractmethod
    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """The effect image for ``frame[y0:y1, x0:x1]`` (same shape as that region)."""

    def composite(self, frame: np.ndarray, alpha: np.ndarray, at: float | None = None,
                  stream: Hashable = 0) -> np.ndarray:
        """The masked frame (a new array; ``frame`` is not changed). ``at`` and ``stream``: the frame's time in
        seconds on its stream's clock, for an effect that changes with time (a background video)."""
        _check(frame, alpha)
        box = alpha_box(alpha)
        out = frame.copy()
        if box is None:
            return out
        y0, y1, x0, x1 = box
        region = frame[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = blend(region, self.effect(frame, box), np.ascontiguousarray(alpha[y0:y1, x0:x1]))
        return out

    def close(self) -> None:
        """Release files (background videos)."""


class BlurCompositor(Compositor):
    """Tent blur (two box passes) of radius ``2 * strength`` pixels."""

    name = "blur"

    def __init__(self, strength: int = 15) -> None:
        if not 1 <= strength <= 200:
            raise ConfigError(f"blur strength must be 1..200 pixels, got {strength}")
        self.strength = strength

    def blur(self, image: np.ndarray) -> np.ndarray:
        """The blur on a whole image (the definition)."""
        size = (2 * self.strength + 1,) * 2
        once = cv2.blur(image, size, borderType=cv2.BORDER_REFLECT_101)
        return cv2.blur(once, size, borderType=cv2.BORDER_REFLECT_101)

    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        height, width = frame.shape[:2]
        margin = 2 * self.strength
        # Two passes of radius s read 2s pixels around the box. Clipped at the frame edge, the
        # reflection happens where the whole-frame blur has it, so the box comes out identical.
        ey0, ey1, ex0, ex1 = max(y0 - margin, 0), min(y1 + margin, height), max(x0 - margin, 0), min(x1 + margin, width)
        blurred = self.blur(frame[ey0:ey1, ex0:ex1])
        return blurred[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]


class PixelateCompositor(Compositor):
    """Block means on a grid anchored at the frame's top-left corner."""

    name = "pixelate"

    def __init__(self, block: int = 16) -> None:
        if not 2 <= block <= 512:
            raise ConfigError(f"pixelate block must be 2..512 pixels, got {block}")
        self.block = block

    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        b = self.block
        by0, bx0 = (y0 // b) * b, (x0 // b) * b
        by1, bx1 = min(-(-y1 // b) * b, frame.shape[0]), min(-(-x1 // b) * b, frame.shape[1])
        region = frame[by0:by1, bx0:bx1].astype(np.uint32)
        rows, cols = np.arange(0, by1 - by0, b), np.arange(0, bx1 - bx0, b)
        sums = np.add.reduceat(np.add.reduceat(region, rows, axis=0), cols, axis=1)
        counts = (np.minimum(rows + b, by1 - by0) - rows)[:, None] * (np.minimum(cols + b, bx1 - bx0) - cols)[None, :]
        means = ((2 * sums + counts[..., None]) // (2 * counts[..., None])).astype(np.uint8)
        full = np.repeat(np.repeat(means, b, axis=0), b, axis=1)
        return full[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]


def parse_color(text: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """A BGR colour from ``"b,g,r"``, ``"#rrggbb"`` or a tuple.

    Example:
        >>> parse_color("#ff8000"), parse_color("0,0,255")
        ((0, 128, 255), (0, 0, 255))
    """
    if isinstance(text, tuple):
        values = text
    elif text.startswith("#") and len(text) == 7:
        try:
            r, g, b = (int(text[i:i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            raise ConfigError(f"colour {text!r} is not #rrggbb") from None
        values = (b, g, r)
    else:
        try:
            values = tuple(int(v) for v in text.split(","))  # type: ignore[assignment]
        except ValueError:
            raise ConfigError(f"colour must be B,G,R (0-255 each) or #rrggbb, got {text!r}") from None
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ConfigError(f"colour must be three values 0-255 (B,G,R) or #rrggbb, got {text!r}")
    return int(values[0]), int(values[1]), int(values[2])


class FillCompositor(Compositor):
    """One solid colour."""

    name = "fill"

    def __init__(self, color: str | tuple[int, int, int] = (0, 0, 0)) -> None:
        self.color = parse_color(color)

    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        return np.full((y1 - y0, x1 - x0, 3), self.color, np.uint8)


class ReplaceCompositor(Compositor):
    """A background image, or a video that plays at its own speed on each stream's clock (looped), resized to the
    frame (see :mod:`realtime.compositor.background`)."""

    name = "replace"
    default_target = "background"

    def __init__(self, background: str | Path | np.ndarray | None = None) -> None:
        if background is None:
            raise ConfigError("mode replace needs a background: --background IMAGE_OR_VIDEO")
        if isinstance(background, np.ndarray):
            if background.dtype != np.uint8 or background.ndim != 3 or background.shape[2] != 3:
                raise InputShapeError(f"background must be uint8 HxWx3 (bgr), got {background.shape} {background.dtype}")
            self.background = Background.from_array(background)
        else:
            self.background = Background(background)
        # per stream, the background last resized and the result: a frame shown behind several is resized once
        self._resized: dict[Hashable, tuple[np.ndarray, tuple[int, int], np.ndarray]] = {}
        self._shown: np.ndarray | None = None  # the background of the frame being composited

    def background_for(self, frame: np.ndarray, at: float | None = None, stream: Hashable = 0) -> np.ndarray:
        """The background behind ``frame`` (at ``at`` seconds on ``stream``'s clock), resized to it."""
        size = (frame.shape[1], frame.shape[0])
        source = self.background.frame_bgr(at, stream)
        last = self._resized.get(stream)
        if last is None or last[0] is not source or last[1] != size:
            last = self._resized[stream] = (source, size, cv2.resize(source, size, interpolation=cv2.INTER_LINEAR))
        return last[2]

    def composite(self, frame: np.ndarray, alpha: np.ndarray, at: float | None = None,
                  stream: Hashable = 0) -> np.ndarray:
        self._shown = self.background_for(frame, at, stream)  # every frame: a video plays on when no one is there
        try:
            return super().composite(frame, alpha)
        finally:
            self._shown = None

    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        shown = self._shown if self._shown is not None else self.background_for(frame)
        return shown[y0:y1, x0:x1]

    def close(self) -> None:
        self.background.close()


class OverlayCompositor(Compositor):
    """A colour tint with an opacity, for visualising the mask."""

    name = "overlay"

    def __init__(self, color: str | tuple[int, int, int] = (0, 255, 0), opacity: float = 0.5) -> None:
        if not 0.0 < opacity <= 1.0:
            raise ConfigError(f"overlay opacity must be in (0, 1], got {opacity}")
        self.color, self.opacity = parse_color(color), opacity

    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        region = frame[y0:y1, x0:x1]
        tint = np.empty_like(region)
        tint[:] = self.color
        return cv2.addWeighted(region, 1.0 - self.opacity, tint, self.opacity, 0.0)


class CutoutCompositor(Compositor):
    """BGRA with the kept side opaque, or a green screen."""

    name = "cutout"
    default_target = "background"

    def __init__(self, cutout_format: str = "bgra") -> None:
        if cutout_format not in ("bgra", "green"):
            raise ConfigError(f"cutout format must be bgra or green, got {cutout_format!r}")
        self.format = cutout_format
        self.output_channels = 4 if cutout_format == "bgra" else 3

    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        return np.full((y1 - y0, x1 - x0, 3), (0, 255, 0), np.uint8)

    def composite(self, frame: np.ndarray, alpha: np.ndarray, at: float | None = None,
                  stream: Hashable = 0) -> np.ndarray:
        if self.format == "green":
            return super().composite(frame, alpha)
        _check(frame, alpha)
        opacity = np.rint(255.0 * (1.0 - alpha)).astype(np.uint8)
        return np.dstack([frame, opacity])


class MaskCompositor(Compositor):
    """The alpha as a grey video."""

    name = "mask"

    def effect(self, frame: np.ndarray, box: Box) -> np.ndarray:  # pragma: no cover - composite overrides
        raise NotImplementedError

    def composite(self, frame: np.ndarray, alpha: np.ndarray, at: float | None = None,
                  stream: Hashable = 0) -> np.ndarray:
        _check(frame, alpha)
        grey = np.rint(255.0 * alpha).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
