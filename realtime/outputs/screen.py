"""``display`` (an OpenCV window; q or Esc stops) and ``null`` (discards frames, for benchmarks)."""

from __future__ import annotations

import contextlib

import cv2
import numpy as np

from engines.errors import OutputError
from realtime.outputs.base import Sink, square_pixels


class StopRequested(Exception):
    """The user closed the display (q / Esc)."""


class DisplaySink(Sink):
    """Shows frames in a window. Raises :class:`StopRequested` when the user presses q or Esc."""

    def __init__(self, title: str = "realtime-mask") -> None:
        self.title, self.uri, self.frames_written = title, f"display://{title}", 0
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise OutputError(
                "display needs OpenCV with GUI support and a screen (this OpenCV has none: "
                "pip install opencv-python instead of opencv-python-headless), or write a file / use http:// output"
            ) from exc

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        cv2.imshow(self.title, square_pixels(image, self.sample_aspect))
        self.frames_written += 1
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise StopRequested

    def close(self) -> None:
        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)


class NullSink(Sink):
    """Counts frames and drops them."""

    accepts_alpha = True

    def __init__(self) -> None:
        self.uri, self.frames_written = "null://", 0

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        self.frames_written += 1
