"""A synthetic test pattern: a moving background with person-like shapes walking across it.

Forms: ``synthetic:`` (640x360 at 30 fps, endless), ``synthetic:1280x720@60``,
``synthetic:640x480@30?frames=300`` (ends after 300 frames), ``...?live=1`` (produced in real time
in its own thread whether or not anyone consumes it — a stand-in for a camera).

Example:
    >>> with SyntheticSource("320x240@25?frames=2") as source:
    ...     [f.bgr.shape for f in source]
    [(240, 320, 3), (240, 320, 3)]
"""

from __future__ import annotations

import functools
import re
import time
import urllib.parse
from collections.abc import Iterator

import cv2
import numpy as np

from engines.errors import ConfigError
from realtime.capture.base import Source
from realtime.capture.live import LiveSource
from realtime.frame import Frame
from realtime.video_decoding import TRUE_COLOR

_SIZE = re.compile(r"^(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?$")


def parse_synthetic(location: str) -> tuple[int, int, float, int | None, bool]:
    """``WxH@FPS?frames=N&live=1`` -> (width, height, fps, frames or None, live)."""
    text, _, query = location.lstrip("/").partition("?")
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"synthetic source takes synthetic:WIDTHxHEIGHT@FPS (e.g. synthetic:640x360@30), got {location!r}")
    width, height = int(match.group(1) or 640), int(match.group(2) or 360)
    fps = float(match.group(3) or 30.0)
    options = dict(urllib.parse.parse_qsl(query))
    unknown = set(options) - {"frames", "live"}
    if unknown:
        raise ConfigError(f"synthetic source: unknown options {sorted(unknown)}; known: frames, live")
    if not (16 <= width <= 8192 and 16 <= height <= 8192 and 0 < fps <= 1000):
        raise ConfigError(f"synthetic source size must be 16..8192 px and fps 0..1000, got {width}x{height}@{fps:g}")
    frames = int(options["frames"]) if "frames" in options else None
    return width, height, fps, frames, options.get("live", "0") in ("1", "true", "yes")


@functools.lru_cache(maxsize=4)
def _diagonal_ramp(height: int, width: int) -> np.ndarray:
    """(x + y) mod 256 as uint8, made once per size (a 1080p frame took 38 ms when it was made per frame)."""
    ramp = (np.add.outer(np.arange(height), np.arange(width)) % 256).astype(np.uint8)
    ramp.flags.writeable = False
    return ramp


def render(index: int, width: int, height: int, fps: float) -> np.ndarray:
    """Frame ``index`` of the pattern (deterministic)."""
    t = index / fps
    base = _diagonal_ramp(height, width) + np.uint8(int(40.0 * t) % 256)  # uint8 wraps: (x + y + 40 t) mod 256
    frame = cv2.merge([base, np.full_like(base, 90), 255 - base])
    for k, (speed, phase) in enumerate(((0.25, 0.0), (0.18, 0.5))):
        cx = int(width * (0.1 + 0.8 * abs(((t * speed + phase) % 2.0) - 1.0)))
        scale = height / (2.6 + 0.6 * k)
        head, body_top = int(0.13 * scale), int(height * 0.25 + 0.28 * scale)
        cv2.ellipse(frame, (cx, body_top - head), (int(head * 0.8), head), 0, 0, 360, (120, 160, 220), -1)
        cv2.rectangle(frame, (cx - int(0.22 * scale), body_top), (cx + int(0.22 * scale), body_top + int(0.6 * scale)),
                      (60 + 80 * k, 40, 30), -1)
        for side in (-1, 1):
            x = cx + side * int(0.1 * scale)
            cv2.line(frame, (x, body_top + int(0.6 * scale)), (x, min(height - 1, body_top + int(1.1 * scale))),
                     (40, 40, 40), max(2, int(0.09 * scale)))
    return frame


class SyntheticSource(Source):
    """The test pattern as a file-like source (every frame, in order; paced with ``realtime``)."""

    color = TRUE_COLOR

    def __init__(self, location: str = "", realtime: bool = False) -> None:
        self.width, self.height, self.fps, self.frame_count, live = parse_synthetic(location)
        if live:
            raise ConfigError("use open_source('synthetic:...?live=1') for the live pattern")
        self.uri = f"synthetic:{location}"
        self.realtime = realtime

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        while self.frame_count is None or index < self.frame_count:
            if self.realtime:
                delay = start + index / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            started = time.monotonic()
            yield Frame(index, render(index, self.width, self.height, self.fps), index / self.fps, started)
            index += 1


class LiveSyntheticSource(LiveSource):
    """The test pattern produced in real time by its own thread, like a camera (newest frame only)."""

    color = TRUE_COLOR

    def __init__(self, location: str = "", read_timeout: float = 5.0) -> None:
        super().__init__(read_timeout=read_timeout)
        self.width, self.height, self.fps, self.frame_count, _ = parse_synthetic(location)
        self.uri = f"synthetic:{location}"
        self._index = 0
        self._start = 0.0
        self.start()

    def _open(self) -> None:
        self._start = time.monotonic()

    def _ended(self) -> bool:
        return self.frame_count is not None and self._index >= self.frame_count

    def _read(self) -> tuple[np.ndarray, float] | None:
        if self._ended():
            return None
        delay = self._start + self._index / self.fps - time.monotonic()
        if delay > 0 and self._stop.wait(delay):
            return None
        frame = render(self._index, self.width, self.height, self.fps)
        self._index += 1
        return frame, (self._index - 1) / self.fps
