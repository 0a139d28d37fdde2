"""The ``replace`` mode's background: an image, or a video (an animated GIF too) that plays at its own speed.

A background video is looped on each stream's clock: the frame shown behind a frame at time ``t`` of its stream is
the background's frame of the moment ``t - t0`` (modulo the background's length), ``t0`` the time of the stream's
first frame, whatever the source's frame rate and however many frames the engine skipped. Each stream has its own
reader, so several streams each see the whole background. Without a time, each call takes the next frame.

Example:
    >>> import numpy as np
    >>> background = Background.from_array(np.zeros((2, 2, 3), np.uint8))
    >>> background.frame_bgr(at=12.5).shape
    (2, 2, 3)
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import SourceError
from realtime.video_decoding import PyAVCapture, decodable_by_pyav

FALLBACK_FPS = 25.0  # FFmpeg's own guess for a video that states no rate
TOLERANCE_S = 0.001  # timestamps are rounded (to a container's time base, to ms): a frame due within this is due


@dataclass
class _Cursor:
    """Where one stream is in the background video: the frame shown and the one after it (read ahead), each with
    its time in the video, and the stream's time at which the video began (``origin``)."""

    capture: cv2.VideoCapture | PyAVCapture
    shown: tuple[np.ndarray, float]
    ahead: tuple[np.ndarray, float] | None
    origin: float | None = None
    index: int = 1  # frames read so far
    start: float = 0.0  # the first frame's own time (the others' are counted from it)


class Background:
    """An image, or a video that loops at its own speed (see the module docstring).

    Args:
        path: an image (PNG, JPEG, ...) or a video (anything OpenCV/FFmpeg reads; a GIF of several frames plays).

    Raises:
        SourceError: the file does not exist or is neither image nor video.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"background {self.path} does not exist; give an image or video file")
        self.image: np.ndarray | None = None
        self.fps = 0.0
        self.duration: float | None = None  # seconds, learned at the end of the first pass
        self._cursors: dict[Hashable, _Cursor] = {}
        self._spare: _Cursor | None = None  # the reader opened to look: the first stream's
        self._pyav = False  # decoded by PyAV: OpenCV opened it but decoded no frame (AV1)
        probe = self._open()
        if probe is not None and probe.ahead is not None:  # two frames at least: a video
            self._spare = probe
            return
        if probe is not None:
            probe.capture.release()
        self.image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if self.image is None:
            if probe is None:
                raise SourceError(f"cannot read background {self.path} as an image or a video; give a PNG/JPEG "
                                  "image or a video file")
            self.image = probe.shown[0]  # a video of one frame

    @classmethod
    def from_array(cls, bgr: np.ndarray) -> Background:
        """A still background from a uint8 HxWx3 BGR image in memory."""
        background = cls.__new__(cls)
        background.path, background.image, background.fps, background.duration = Path("<array>"), bgr, 0.0, None
        background._cursors, background._spare = {}, None
        return background

    @property
    def is_video(self) -> bool:
        return self.image is None

    def _open(self) -> _Cursor | None:
        """A reader at the video's first frame with the second read ahead; None when no frame decodes."""
        capture: cv2.VideoCapture | PyAVCapture = PyAVCapture(self.path) if self._pyav else cv2.VideoCapture(
            str(self.path))
        if not capture.isOpened():
            capture.release()
            return None
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0) or self.fps
        first = self._read(capture, 0, 0.0)
        if first is None:
            capture.release()
            fallback = None if self._pyav else decodable_by_pyav(self.path)
            if fallback is None:
                return None
            self._pyav, capture = True, fallback
            first = self._read(capture, 0, 0.0)
            assert first is not None  # decodable_by_pyav read it
        start = first[1]  # times are counted from the first frame's
        return _Cursor(capture, (first[0], 0.0), self._read(capture, 1, start), start=start)

    def _read(self, capture: cv2.VideoCapture | PyAVCapture, index: int, start: float) -> tuple[np.ndarray, float] | None:
        """The next frame and its time from the first frame's (``start``, the first's own)."""
        ok, bgr = capture.read()
        if not ok:
            return None
        position = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        return bgr, (position if position > 0 or index == 0 else index / (self.fps or FALLBACK_FPS)) - start

    def _rewind(self, cursor: _Cursor) -> None:
        """Back to the first frame (a fresh reader: seeking is not frame-exact in every format)."""
        cursor.capture.release()
        fresh = self._open()
        if fresh is None:
            raise SourceError(f"background video {self.path} can no longer be read; check the file")
        cursor.capture, cursor.shown, cursor.ahead, cursor.index = fresh.capture, fresh.shown, fresh.ahead, 1
        cursor.start = fresh.start

    def _step(self, cursor: _Cursor) -> None:
        """The frame read ahead becomes the one shown (at the end, the video's length is known)."""
        assert cursor.ahead is not None
        cursor.shown = cursor.ahead
        cursor.index += 1
        cursor.ahead = self._read(cursor.capture, cursor.index, cursor.start)
        if cursor.ahead is None and self.duration is None:  # the last frame held for the mean frame period
            period = cursor.shown[1] / (cursor.index - 1)
            self.duration = cursor.shown[1] + (period if period > 0 else 1.0 / (self.fps or FALLBACK_FPS))

    def frame_bgr(self, at: float | None = None, stream: Hashable = 0) -> np.ndarray:
        """The background behind the frame at time ``at`` (seconds, on its stream's clock) of ``stream``; with no
        time, the stream's next frame. An image is the same for all."""
        if self.image is not None:
            return self.image
        cursor = self._cursors.get(stream)
        if cursor is None:
            cursor, self._spare = self._spare or self._open(), None
            if cursor is None:
                raise SourceError(f"background video {self.path} can no longer be read; check the file")
            self._cursors[stream] = cursor
            if at is not None:
                cursor.origin = at
            return cursor.shown[0]
        if at is None:  # the next frame, looping
            if cursor.ahead is None:
                self._rewind(cursor)
            else:
                self._step(cursor)
            return cursor.shown[0]
        if cursor.origin is None:
            cursor.origin = at
        moment = at - cursor.origin
        if self.duration is not None and math.isfinite(moment):
            moment %= self.duration
            if moment + TOLERANCE_S >= self.duration:
                moment = 0.0
        if moment + TOLERANCE_S < cursor.shown[1]:  # a new loop (or a clock that went back)
            self._rewind(cursor)
        while cursor.ahead is not None and cursor.ahead[1] <= moment + TOLERANCE_S:
            self._step(cursor)
        if cursor.ahead is None and self.duration is not None and moment + TOLERANCE_S >= self.duration:  # loop
            return self.frame_bgr(at, stream)
        return cursor.shown[0]

    def close(self) -> None:
        """Release the video readers."""
        for cursor in [*self._cursors.values(), *([self._spare] if self._spare else [])]:
            cursor.capture.release()
        self._cursors.clear()
        self._spare = None
