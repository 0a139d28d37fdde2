"""Sources backed by files: a video file (anything OpenCV/FFmpeg reads, GIF included) and an image folder or glob.

Example:
    >>> from realtime.capture.files import VideoFileSource
    >>> with VideoFileSource("clip.mp4") as source:  # doctest: +SKIP
    ...     first = next(iter(source))
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from engines.errors import SourceError
from realtime.capture.base import Source
from realtime.capture.live import redact
from realtime.frame import Frame

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

    def __init__(self, path: str | Path, realtime: bool = False, capture: cv2.VideoCapture | None = None) -> None:
        self.path = Path(path) if capture is None else None  # a local file (what a run must not write over)
        self.location = str(path)  # to open it again (its audio): the URL unredacted
        if capture is None:
            self.uri = f"file://{path}"
            capture = cv2.VideoCapture(str(self._check_file(Path(path))))
        else:
            self.uri = redact(str(path))
        self.capture: cv2.VideoCapture | None = capture
        if not capture.isOpened():
            raise SourceError(f"cannot decode {self.path or self.uri} as video; give a file OpenCV/FFmpeg can read")
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        self.realtime = realtime

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
                if index == 0:
                    raise SourceError(f"{self.path or self.uri} has no decodable frames")
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


class StdinSource(VideoFileSource):
    """Every frame of a video stream piped into standard input (``-i -``), in order, as a file's: the writer sets the
    pace (``ffmpeg -i rtmp://... -c copy -f mpegts - | realtime-mask run -i - ...``). Any stream FFmpeg reads from a
    pipe: MPEG-TS, Matroska, NUT, MJPEG, GIF, an MP4 with its index at the start. As any reader of a pipe it waits
    for the writer however long that takes; the run ends when the pipe closes, or when it is stopped: FFmpeg reads
    through a pipe of ours that a thread fills from standard input, so that :meth:`interrupt` can end it (FFmpeg
    blocked on standard input itself would hold a stop signal until the writer sent more).

    Raises:
        SourceError: standard input is a terminal, or what comes is not video.
    """

    rereadable = False  # read once: its sound cannot be copied

    def __init__(self, realtime: bool = False) -> None:
        if os.isatty(0):
            raise SourceError("-i - reads video from standard input, which is a terminal here; pipe a stream into it "
                              "(ffmpeg -i INPUT -c copy -f mpegts - | realtime-mask run -i - ...) or give a file")
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        self._stopped = threading.Event()
        self._relay = threading.Thread(target=self._copy_stdin, args=(write_end,), name="stdin-relay", daemon=True)
        self._relay.start()
        try:
            capture = cv2.VideoCapture(f"pipe:{read_end}", cv2.CAP_FFMPEG)
            if not capture.isOpened():
                capture.release()
                raise SourceError("standard input is not video FFmpeg can read; pipe MPEG-TS, Matroska or another "
                                  "stream format (ffmpeg ... -f mpegts -)")
            super().__init__("pipe:0", realtime=realtime, capture=capture)
        except BaseException:
            self.interrupt()
            os.close(read_end)
            raise
        self._read_end: int | None = read_end
        self.uri = "stdin://"

    def _copy_stdin(self, write_end: int) -> None:
        """Standard input into our pipe until it ends or :meth:`interrupt`; closing it is FFmpeg's end of stream."""
        try:
            while not self._stopped.is_set():
                if not select.select([0], [], [], 0.1)[0]:
                    continue
                data = memoryview(os.read(0, 1 << 16))
                if not data:
                    return
                while data and not self._stopped.is_set():
                    if select.select([], [write_end], [], 0.1)[1]:
                        with contextlib.suppress(BlockingIOError):
                            data = data[os.write(write_end, data):]
        except OSError:
            return  # standard input or our pipe failed: FFmpeg sees the end
        finally:
            os.close(write_end)

    def __iter__(self) -> Iterator[Frame]:
        try:
            yield from super().__iter__()
        except SourceError as exc:  # no frame at all
            raise SourceError("standard input gave no frame FFmpeg could decode: an MP4 must have its index at the "
                              "start to be piped (ffmpeg -movflags +faststart), or pipe MPEG-TS or Matroska") from exc

    def interrupt(self) -> None:
        self._stopped.set()
        self._relay.join(timeout=5.0)

    def close(self) -> None:
        self.interrupt()
        super().close()
        if self._read_end is not None:
            with contextlib.suppress(OSError):  # FFmpeg's pipe protocol leaves it open; never mind if not
                os.close(self._read_end)
            self._read_end = None


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
