"""Sources backed by files: a video file (anything OpenCV/FFmpeg reads, GIF included) and an image folder or glob.

Example:
    >>> from realtime.capture.files import VideoFileSource
    >>> with VideoFileSource("clip.mp4") as source:  # doctest: +SKIP
    ...     first = next(iter(source))
"""

from __future__ import annotations

import functools
import glob
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from engines.errors import SourceError
from realtime.capture.base import Source
from realtime.capture.live import redact
from realtime.frame import Frame
from realtime.video_decoding import (
    BT2020_MATRICES,
    TRUE_COLOR,
    WEB_RESUME,
    PyAVCapture,
    color_tags,
    decodable_by_pyav,
    pixel_aspect,
    stream_color_tags,
    undecodable_reason,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A file, folder or glob that does not exist or matches nothing."""


class VideoFileSource(Source):
    """Every frame of a video file, in order.

    Args:
        path: the video file (or, with ``capture``, the URL of a file on a web server).
        realtime: pace frames at the file's fps (as a camera would deliver them).
        capture: an open capture of ``path`` to read (a file served over HTTP: see ``open_source``).
    """

    rereadable = True  # it can be opened again (for its sound)

    def __init__(self, path: str | Path, realtime: bool = False, capture: cv2.VideoCapture | PyAVCapture | None = None,
                 timeout: tuple[float, float] = (10.0, 10.0)) -> None:
        self.path = Path(path) if capture is None else None  # a local file (what a run must not write over)
        self.location = str(path)  # to open it again (its audio): the URL unredacted
        self.timeout = timeout  # a web server's: to open, and to wait for a read
        opened: cv2.VideoCapture | PyAVCapture
        if capture is None:
            self.uri = f"file://{path}"
            self.color = color_tags(self._check_file(Path(path)))
            opened = self._open_file(Path(path))
        else:
            self.uri, opened = redact(str(path)), capture
            if self._on_web:  # its colours, which OpenCV decodes by and does not say: the outputs state them
                self.color = stream_color_tags(self.location, timeout[0])
                if (hdr := self._bt2020_by_pyav()) is not None:
                    opened.release()
                    opened = hdr
        self.capture: cv2.VideoCapture | PyAVCapture | None = opened
        if not opened.isOpened():
            raise SourceError(f"cannot decode {self.path or self.uri} as video; give a file OpenCV/FFmpeg can read")
        self.fps = float(opened.get(cv2.CAP_PROP_FPS) or 0.0)
        self.sample_aspect = pixel_aspect(opened)
        count = int(opened.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        self.realtime = realtime

    @functools.cached_property
    def recorded_at(self) -> float | None:  # type: ignore[override]
        """When the recording began, from the container's ``creation_time`` (a camera's or a phone's file), in
        seconds since the epoch; None for a file that does not say (or says 1970 or 1904: unset), or one on a web
        server."""
        import av

        if self.path is None:
            return None
        try:
            with av.open(str(self.path)) as container:
                stated = container.metadata.get("creation_time") or next(
                    (s.metadata["creation_time"] for s in container.streams.video if "creation_time" in s.metadata), "")
        except (av.FFmpegError, OSError):
            return None
        try:
            at = datetime.fromisoformat(stated.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() if at.year >= 1990 else None

    @property
    def _on_web(self) -> bool:
        return self.path is None and self.location.startswith(("http://", "https://"))

    def _open_file(self, path: Path) -> cv2.VideoCapture | PyAVCapture:
        """OpenCV's capture of a local file; PyAV's for BT.2020 (HDR) video (:meth:`_bt2020_by_pyav`)."""
        return self._bt2020_by_pyav() or cv2.VideoCapture(str(path))

    def _bt2020_by_pyav(self) -> PyAVCapture | None:
        """PyAV's capture for BT.2020 (HDR) video, whose colours OpenCV's FFmpeg decodes off by 10 levels on average
        (see :mod:`realtime.video_decoding`); None for the rest, or where PyAV cannot open it (OpenCV's colours, off,
        rather than no frames)."""
        if self.color is None or self.color.matrix not in BT2020_MATRICES:
            return None
        try:
            return PyAVCapture(self.location, WEB_RESUME if self._on_web else None, self.timeout)
        except Exception:
            return None

    @staticmethod
    def _check_file(path: Path) -> Path:
        if not path.is_file():
            if path.exists():
                raise SourceError(f"source {path} is not a regular file; give a video file, an image folder or a glob")
            raise SourceNotFoundError(f"source file {path} does not exist; check the path")
        return path

    def __iter__(self) -> Iterator[Frame]:
        index, position = 0, 0.0
        start = time.monotonic()
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        while self.capture is not None:
            started = time.monotonic()  # the capture time: decoding is part of the frame's latency
            ok, bgr = self.capture.read()
            if not ok:
                if index == 0 and self._switch_to_pyav():
                    continue
                if index == 0:
                    raise self._no_frame()
                if self.path is None and self.frame_count and index < self.frame_count - max(2.0, self.fps):
                    raise SourceError(f"{self.uri} ended at frame {index} of the {self.frame_count} it states: the "
                                      "connection was lost and could not be resumed; the output has the frames up "
                                      "to there; run again when the server is back")
                if self.path is not None:
                    self._warn_if_cut_short(index, position)
                return
            if self.realtime and period:
                delay = start + index * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                    started = time.monotonic()  # a paced frame is captured when it is released
            position = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            position = position if position > 0 else index * period
            yield Frame(index, bgr, position, started)
            index += 1

    def _no_frame(self) -> SourceError:
        """The error for a source that gave no frame at all."""
        return SourceError(undecodable_reason(self.location, shown=self.uri if self.path is None else None))

    def _switch_to_pyav(self) -> bool:
        """Decode with PyAV a file (local, or on a web server: resumed as OpenCV's is) that OpenCV opened but decoded
        no frame of (AV1: see ``realtime.video_decoding``)."""
        if (self.path is None and not self._on_web) or isinstance(self.capture, PyAVCapture):
            return False  # a pipe: read once, by OpenCV
        fallback = decodable_by_pyav(self.location, WEB_RESUME if self._on_web else None, self.timeout, self.uri)
        if fallback is None:
            return False
        if self.capture is not None:
            self.capture.release()
        self.capture = fallback
        return True

    def _warn_if_cut_short(self, frames: int, last_position: float) -> None:
        """Say so when a local file ends more than a second before the length its container states (a copy cut
        short, a recording whose disk filled): its frames are all there is, so the run goes on, but not silently."""
        import av

        try:
            with av.open(str(self.path)) as container:
                stated = container.duration / av.time_base if container.duration else None
        except (av.FFmpegError, OSError):
            return
        if stated is not None and last_position < stated - max(1.0, 2.0 / (self.fps or 25.0)):
            log.warning("%s ends after %d frames, at %.1f s of the %.1f s its container states: the file is "
                        "truncated or damaged; the output has the frames it holds", self.path, frames, last_position,
                        stated)

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class ImageFolderSource(Source):
    """Images of a folder (sorted by name) or of a glob pattern, as frames.

    Args:
        pattern: a folder, or a glob such as ``frames/*.png``.
        fps: the frame rate to report (images carry none).
    """

    def __init__(self, pattern: str | Path, fps: float = 25.0) -> None:
        text = str(pattern)
        paths = image_paths(text)
        if not paths:
            raise SourceNotFoundError(
                f"no images ({', '.join(IMAGE_SUFFIXES)}) found at {text}; give a folder of images or a glob"
            )
        self.paths = paths
        self.uri = f"images://{text}"
        self.color = TRUE_COLOR
        self.fps = fps
        self.frame_count = len(paths)

    def __iter__(self) -> Iterator[Frame]:
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        for index, path in enumerate(self.paths):
            started = time.monotonic()
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SourceError(f"cannot decode image {path}; remove it or convert it to PNG/JPEG")
            yield Frame(index, bgr, index * period, started)


def image_paths(pattern: str | Path) -> list[Path]:
    """The images (by suffix, sorted by name) of a folder or of a glob such as ``frames/*.png``; [] if none.

    Example:
        >>> image_paths("/nonexistent/*.png")
        []
    """
    text = str(pattern)
    folder = Path(text)
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)


def read_frames(path: str | Path, limit: int | None = None) -> list[np.ndarray]:
    """The first ``limit`` (default: all) decoded BGR frames of a video file, for tests and benchmarks.

    Example:
        >>> len(read_frames("clip.mp4", 10))  # doctest: +SKIP
        10
    """
    frames = []
    with VideoFileSource(path) as source:
        for frame in source:
            frames.append(frame.bgr)
            if limit is not None and len(frames) >= limit:
                break
    return frames
