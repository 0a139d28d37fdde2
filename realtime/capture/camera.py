"""The mode a camera is asked for: ``0?size=1280x720&fps=30&format=mjpg`` (any of the three).

A camera opened without one gives its driver's default mode, which may be far below what it can do; and many
cameras give their large sizes at full rate only as MJPEG (raw frames take more than their bus carries). The mode is set
through OpenCV's capture properties (FOURCC first, then size, then rate: the order V4L2 drivers take them in)
and read back: a camera that does not offer it gives what it can, said once.

Example:
    >>> CameraMode.parse("size=1280x720&fps=30&format=mjpg")
    CameraMode(size_wh=(1280, 720), fps=30.0, fourcc='MJPG')
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from dataclasses import dataclass

import cv2

from engines.errors import ConfigError

log = logging.getLogger(__name__)

FORMATS = {"mjpg": "MJPG", "mjpeg": "MJPG", "yuyv": "YUYV", "h264": "H264", "nv12": "NV12"}
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
HELP = "a camera takes ?size=WxH&fps=N&format=mjpg|yuyv|h264|nv12 (e.g. 0?size=1280x720&fps=30&format=mjpg)"


@dataclass(frozen=True)
class CameraMode:
    """What to ask a camera for; None: its default."""

    size_wh: tuple[int, int] | None = None
    fps: float | None = None
    fourcc: str | None = None

    @classmethod
    def parse(cls, query: str) -> CameraMode | None:
        """The mode from a source string's query (``size=1280x720&fps=30&format=mjpg``); None when empty.

        Raises:
            ConfigError: an unknown key, or a value out of range.
        """
        if not query:
            return None
        options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - {"size", "fps", "format"})
        if unknown:
            raise ConfigError(f"unknown camera option {unknown[0]!r}: {HELP}")
        size_wh = fps = fourcc = None
        if "size" in options:
            match = _SIZE.match(options["size"])
            if not match or not all(16 <= int(v) <= 8192 for v in match.groups()):
                raise ConfigError(f"camera size must be WIDTHxHEIGHT, 16..8192 each, got {options['size']!r}: {HELP}")
            size_wh = int(match.group(1)), int(match.group(2))
        if "fps" in options:
            try:
                fps = float(options["fps"])
            except ValueError:
                fps = -1.0
            if not 0 < fps <= 1000:
                raise ConfigError(f"camera fps must be a number in (0, 1000], got {options['fps']!r}: {HELP}")
        if "format" in options:
            fourcc = FORMATS.get(options["format"].lower())
            if fourcc is None:
                raise ConfigError(f"camera format must be one of {', '.join(FORMATS)}, got {options['format']!r}")
        return cls(size_wh, fps, fourcc)

    def apply(self, capture: cv2.VideoCapture, where: str) -> None:
        """Ask the open camera for this mode, then say once if it gave another."""
        if self.fourcc is not None:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
        if self.size_wh is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size_wh[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size_wh[1])
        if self.fps is not None:
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        got = self.read_back(capture)
        if got != self:
            log.warning("%s gives %s, not the %s asked for: it does not offer that mode (v4l2-ctl --list-formats-ext "
                        "lists those it does)", where, got.describe(), self.describe())

    def read_back(self, capture: cv2.VideoCapture) -> CameraMode:
        """What the camera gives, in the terms this mode asks for (what it does not ask for is left None)."""
        code = int(capture.get(cv2.CAP_PROP_FOURCC))
        fourcc = "".join(chr((code >> 8 * k) & 0xFF) for k in range(4)).upper() if code > 0 else None
        size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        return CameraMode(size if self.size_wh is not None else None,
                          fps if self.fps is not None and abs(fps - self.fps) > 0.5 else self.fps,
                          fourcc if self.fourcc is not None else None)

    def describe(self) -> str:
        parts = [f"{self.size_wh[0]}x{self.size_wh[1]}" if self.size_wh else "",
                 f"{self.fps:g} fps" if self.fps else "", self.fourcc or ""]
        return " ".join(part for part in parts if part) or "its default mode"
