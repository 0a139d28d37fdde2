"""Mask compositor: mask post-processing and the masking modes (CPU reference; CUDA kernels beside it).

Example:
    >>> compositor = make_compositor("pixelate", block=8)
    >>> compositor.name
    'pixelate'
"""

from __future__ import annotations

from typing import Any

from engines.errors import ConfigError
from realtime.compositor.masks import MaskPostprocessor, MaskSettings
from realtime.compositor.modes import (
    BlurCompositor,
    Compositor,
    CutoutCompositor,
    FillCompositor,
    MaskCompositor,
    OverlayCompositor,
    PixelateCompositor,
    ReplaceCompositor,
)

MODES: dict[str, type[Compositor]] = {
    cls.name: cls
    for cls in (BlurCompositor, PixelateCompositor, FillCompositor, ReplaceCompositor, OverlayCompositor,
                CutoutCompositor, MaskCompositor)
}


def make_compositor(mode: str, **options: Any) -> Compositor:
    """Build the compositor for a mode name with its options (unknown options are an error).

    Raises:
        ConfigError: unknown mode or option.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    try:
        return MODES[mode](**options)
    except TypeError as exc:
        raise ConfigError(f"mode {mode}: {exc}") from None


__all__ = ["MODES", "Compositor", "MaskPostprocessor", "MaskSettings", "make_compositor"]
