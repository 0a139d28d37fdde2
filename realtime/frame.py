"""The data that passes between stages: :class:`Frame` (and, later, masks and timings).

Example:
    >>> import numpy as np
    >>> f = Frame(index=0, bgr=np.zeros((4, 6, 3), np.uint8), source_ts=0.0, capture_ts=1.0)
    >>> f.resolution_wh
    (6, 4)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from engines.errors import InputShapeError

Clock = Literal["source_ts", "capture_ts"]  # see Source.clock


@dataclass(frozen=True)
class Frame:
    """One decoded video frame.

    Attributes:
        index: position in the source, from 0 (gaps mean dropped frames).
        bgr: uint8 image, HxWx3, BGR channel order (OpenCV's).
        source_ts: the source's own timestamp in seconds (file position, stream PTS, or capture time).
        capture_ts: ``time.monotonic()`` when the frame was read.
        placeholder: True for a stand-in the pipeline made while a live source reconnects (it repeats the
            last frame and is always written fully masked).
        stream: which of the pipeline's sources it came from, from 0 (always 0 with one source).
    """

    index: int
    bgr: np.ndarray
    source_ts: float
    capture_ts: float
    placeholder: bool = False
    stream: int = 0

    def __post_init__(self) -> None:
        image = self.bgr
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = (image.shape, str(image.dtype)) if isinstance(image, np.ndarray) else type(image).__name__
            raise InputShapeError(f"Frame.bgr must be uint8 HxWx3 (hwc, bgr), got {got}")
        if self.index < 0:
            raise InputShapeError(f"Frame.index must be >= 0, got {self.index}")

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.bgr.shape[1], self.bgr.shape[0]

    def time_on(self, clock: Clock) -> float:
        """The frame's time in seconds on a source's ``clock`` (``Source.clock``).

        Example:
            >>> Frame(3, np.zeros((2, 2, 3), np.uint8), source_ts=0.12, capture_ts=7.5).time_on("capture_ts")
            7.5
        """
        return self.source_ts if clock == "source_ts" else self.capture_ts
