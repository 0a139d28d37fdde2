"""``--segment SECONDS``: a recording cut into files of that length, as a 24/7 camera's recordings are kept (a file
per hour to keep, move or delete; none growing for ever).

Each segment is a video file of its own (:class:`~realtime.outputs.files.VideoFileSink`: finalised when the next one
begins, playable after a kill up to about its last second), named by the local time its first frame was written:
the output's name may hold ``strftime`` fields (``rec/%Y-%m-%d/cam1-%H%M%S.mp4``: folders made as needed), else the
time is put before the suffix (``cam1.mp4`` → ``cam1-20261130-180000.mp4``); a name taken already (two segments in
one second, an earlier run's file) gets ``-1``, ``-2``, …: no recording is written over. A segment ends at the first frame
``SECONDS`` after its first (on the frame's own clock: a file's position, a camera's arrival time), so no frame is
lost or written twice at a cut.

Example:
    >>> segment_name("rec/cam1.mp4", 0.0, time_struct=time.gmtime(0))
    'rec/cam1-19700101-000000.mp4'
    >>> segment_name("rec/%Y-%m-%d/cam1-%H%M%S.mp4", 0.0, time_struct=time.gmtime(0))
    'rec/1970-01-01/cam1-000000.mp4'
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from engines.errors import ConfigError, OutputError
from realtime.outputs.base import Sink
from realtime.outputs.files import VIDEO_FORMATS, VideoFileSink

log = logging.getLogger(__name__)


def check_segment(segment_s: float, videos: list[Path] | None = None) -> None:
    """Raise :class:`ConfigError` unless ``segment_s`` is a number of seconds >= 1 (and, given the run's video file
    outputs, there is one to cut)."""
    if not 1.0 <= segment_s < math.inf:
        raise ConfigError(f"--segment must be a number of seconds >= 1, got {segment_s}")
    if videos is not None and not videos:
        raise ConfigError(f"--segment cuts video file outputs ({', '.join(VIDEO_FORMATS)}); the run has none")


def segment_name(pattern: str, at: float, time_struct: time.struct_time | None = None) -> str:
    """The file name of a segment that begins at ``at`` (seconds since the epoch), from the output's name."""
    when = time_struct or time.localtime(at)
    if "%" in pattern:
        return time.strftime(pattern, when)
    path = Path(pattern)
    return str(path.with_name(f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S', when)}{path.suffix}"))


class SegmentedVideoSink(Sink):
    """A video file output cut into segments of ``segment_s`` seconds (see the module doc).

    Raises:
        ConfigError: a segment length that is not a number of seconds >= 1.
    """

    def __init__(self, pattern: str, fps: float = 25.0, segment_s: float = 3600.0) -> None:
        check_segment(segment_s)
        video_format = VIDEO_FORMATS.get(Path(pattern).suffix.lower())
        if video_format is None:
            raise OutputError(f"--segment cuts video files ({', '.join(VIDEO_FORMATS)}), not {pattern}")
        self.accepts_alpha = video_format.alpha_pix_fmt is not None
        self.pattern, self.fps, self.segment_s = pattern, fps, segment_s
        self.uri = f"file://{pattern} (segments of {segment_s:g} s)"
        self.frames_written = 0
        self.files: list[Path] = []  # the segments written, oldest first
        self._current: VideoFileSink | None = None
        self._started_at: float | None = None  # the current segment's first frame, on the frames' clock

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        at = present_ts if present_ts is not None else capture_ts if capture_ts is not None else time.monotonic()
        if self._current is not None and self._started_at is not None and at - self._started_at >= self.segment_s:
            self._finish()
        if self._current is None:
            self._current = self._open_next()
            self._started_at = at
        self._current.write(image, capture_ts, present_ts)
        self.frames_written += 1

    def _open_next(self) -> VideoFileSink:
        first = name = Path(segment_name(self.pattern, time.time()))
        taken = 0
        while name in self.files or name.exists():  # two segments in one second, or an earlier run's: kept
            taken += 1
            name = first.with_name(f"{first.stem}-{taken}{first.suffix}")
        try:
            name.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create folder {name.parent} for {name.name}: {exc.strerror}") from exc
        sink = VideoFileSink(name, self.fps)
        sink.live = self.live
        self.files.append(name)
        log.info("recording into %s", name)
        return sink

    def _finish(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.close()

    def close(self) -> None:
        self._finish()
