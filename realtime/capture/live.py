"""Live sources — cameras and network streams — read in their own thread, newest frame only.

The reader thread keeps only the newest frame; a frame replaced before the consumer took it is
dropped and counted, so latency never builds up (a source that sets ``keeps_every_frame``, live HLS in
:mod:`realtime.capture.hls`, waits for the consumer instead). Streams reconnect with capped exponential backoff
when they drop. End of stream, timeout and error are distinct: iteration ends at end of stream, a
:class:`SourceTimeoutError` says no frame came in time, a :class:`~engines.errors.SourceError` says
the source failed.

Example:
    >>> with StreamSource("rtsp://127.0.0.1:8554/cam", tcp=True, open_timeout=5) as source:  # doctest: +SKIP
    ...     for frame in source:
    ...         print(frame.index, source.dropped)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import SourceError
from realtime.capture.base import Source
from realtime.capture.camera import CameraMode
from realtime.frame import Clock, Frame
from realtime.video_decoding import TRUE_COLOR, WEB_RESUME, pixel_aspect, stream_color_tags

_FFMPEG_OPTIONS_LOCK = threading.Lock()
DROP_WARNING_EVERY_S = 60.0  # a source's drops are warned of at most this often (the others: info, with -v)
log = logging.getLogger(__name__)


class SourceTimeoutError(SourceError, TimeoutError):
    """No frame arrived within the read timeout (and the source is not reconnecting)."""


def redact(uri: str) -> str:
    """Hide credentials in a URL: ``rtsp://user:pass@host/x`` -> ``rtsp://***@host/x``.

    Example:
        >>> redact("rtsp://admin:secret@10.0.0.5:554/stream1")
        'rtsp://***@10.0.0.5:554/stream1'
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def open_stream(url: str, open_timeout: float = 10.0, read_timeout: float = 10.0, tcp: bool = True,
                resume: bool = False) -> cv2.VideoCapture:
    """An open OpenCV/FFmpeg capture of an ``rtsp://`` or ``http(s)://`` URL.

    ``resume``: a dropped HTTP connection is resumed where it was (a file: with a range request), for up to
    8 s, inside FFmpeg. For files on web servers; a live stream's drops are the reader thread's to handle.
    ``$OPENCV_FFMPEG_CAPTURE_OPTIONS`` (``key;value|...``) is added after ours, so it can override them.

    Raises:
        SourceError: it did not open within ``open_timeout`` s.

    Example:
        >>> open_stream("rtsp://127.0.0.1:9/none", open_timeout=1)  # doctest: +SKIP
        Traceback (most recent call last):
        engines.errors.SourceError: cannot open rtsp://127.0.0.1:9/none within 1 s; ...
    """
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC,
              int(read_timeout * 1000)]
    options = []
    if url.startswith("rtsp"):
        options.append(f"rtsp_transport;{'tcp' if tcp else 'udp'}")
    if url.startswith(("rtsp", "rtmp")):
        # FFmpeg's default probing reads ~3 s of a 10 fps camera before the first frame (an RTMP stream: 5 s, each
        # then read behind); half a second is plenty for one H.264/H.265 video stream and makes reconnects fast.
        options.append("analyzeduration;500000|probesize;200000")
    if resume:
        options.append("|".join(f"{key};{value}" for key, value in WEB_RESUME.items()))
    with _FFMPEG_OPTIONS_LOCK:
        previous = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
        if options:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "|".join([*options, *([previous] if previous else [])])
        try:
            capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        finally:
            if previous is None:
                os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
            else:
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = previous
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open {redact(url)} within {open_timeout:g} s; check the address, path, "
                          "credentials and that the camera/server is up")
    return capture


@dataclass
class LiveStats:
    """Counters of a live source."""

    captured: int = 0
    dropped: int = 0
    disconnects: int = 0
    reconnects: int = 0
    read_timeouts: int = 0


class LiveSource(Source):
    """Base of live sources: a reader thread around :meth:`_open` / :meth:`_read`.

    Args:
        read_timeout: seconds the consumer waits for a frame before :class:`SourceTimeoutError`.
        reconnect: reopen the source when reading fails, with backoff ``backoff_initial`` doubling up to
            ``backoff_max`` seconds; ``max_reconnects`` tries at most (None: forever).
    """

    live = True
    keeps_every_frame = False  # the newest frame wins; True: the reader waits for the consumer (HLS)
    clock: Clock = "capture_ts"

    def __init__(self, read_timeout: float = 10.0, reconnect: bool = False, backoff_initial: float = 0.25,
                 backoff_max: float = 1.0, max_reconnects: int | None = None) -> None:
        self.read_timeout, self.reconnect = read_timeout, reconnect
        self.backoff_initial, self.backoff_max, self.max_reconnects = backoff_initial, backoff_max, max_reconnects
        self.stats = LiveStats()
        self._condition = threading.Condition()
        self._newest: Frame | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.reconnecting = False
        self._drop_warned_at = -DROP_WARNING_EVERY_S  # when a drop was last warned of (monotonic)
        self.down_at_start: SourceError | None = None  # why it did not open at the start (see :meth:`start`)
        self._thread: threading.Thread | None = None
        self._closing = threading.Lock()  # close() may come from two threads at once (a pipeline's capture and main)

    # --- what a concrete source provides ------------------------------------------------------
    def _open(self) -> None:
        """Open the device/connection; raise SourceError when it cannot be opened."""
        raise NotImplementedError

    def _read(self) -> tuple[np.ndarray, float] | None:
        """The next frame and its source timestamp, or None when reading failed / the stream ended."""
        raise NotImplementedError

    def _release(self) -> None:
        """Close the device/connection."""

    def _ended(self) -> bool:
        """True when a failed read means a clean end of stream (not a drop)."""
        return False

    # --- the reader thread ---------------------------------------------------------------------
    def start(self, wait_if_down: bool = False) -> None:
        """Open the source and start the reader thread.

        Raises:
            SourceError: it did not open — unless ``wait_if_down`` (and it reconnects): then the reader thread
                goes on opening it with the reconnect backoff, ``down_at_start`` says why it is not up yet, and
                it gives no frames and no read timeout until it is (one of several cameras down at the start
                must not keep the others from being masked).
        """
        try:
            self._open()
        except SourceError as exc:
            if not (wait_if_down and self.reconnect):
                raise
            self.down_at_start, self.reconnecting = exc, True
        self._thread = threading.Thread(target=self._run, name=f"capture {self.uri}", daemon=True)
        self._thread.start()

    def ensure_started(self) -> None:
        """Start the reader thread unless it runs already."""
        if self._thread is None:
            self.start()

    @property
    def dropped(self) -> int:  # type: ignore[override]
        return self.stats.dropped

    def _publish(self, bgr: np.ndarray, source_ts: float) -> None:
        with self._condition:
            if self.keeps_every_frame:
                while self._newest is not None and not self._stop.is_set():
                    self._condition.wait(0.1)
                if self._stop.is_set():
                    return  # closing: nobody takes it, and it was not dropped for being late
            if self._newest is not None:
                self.stats.dropped += 1
            self._newest = Frame(self.stats.captured, bgr, source_ts, time.monotonic())
            self.stats.captured += 1
            self._condition.notify_all()

    def _finish(self, error: BaseException | None = None) -> None:
        with self._condition:
            self._finished, self._error = True, error
            self._condition.notify_all()

    def _reopen(self) -> bool:
        """Reconnect after a drop, said on stderr with the local time (a flapping camera: once a minute, see
        :data:`DROP_WARNING_EVERY_S`) and again when it is back."""
        self.stats.disconnects += 1
        self.reconnecting = True
        dropped = time.monotonic()
        say = log.warning if dropped - self._drop_warned_at >= DROP_WARNING_EVERY_S else log.info
        if say == log.warning:
            self._drop_warned_at = dropped
        say("%s dropped at %s (drop %d of the run); reconnecting", self.uri, time.strftime("%H:%M:%S"),
            self.stats.disconnects)
        self._release()
        if not self._open_with_backoff():
            return False
        self.stats.reconnects += 1
        say("%s is back at %s, %.0f s after it dropped", self.uri, time.strftime("%H:%M:%S"), time.monotonic() - dropped)
        return True

    def _open_with_backoff(self) -> bool:
        """Open it again and again (backoff, at most ``max_reconnects`` tries) until it opens (True) or stops."""
        delay, tries = self.backoff_initial, 0
        while not self._stop.is_set():
            if self.max_reconnects is not None and tries >= self.max_reconnects:
                return False
            tries += 1
            try:
                self._open()
            except SourceError:
                self._stop.wait(delay)
                delay = min(delay * 2.0, self.backoff_max)
                continue
            self.reconnecting = False
            return True
        return False

    def _run(self) -> None:
        try:
            if self.down_at_start is not None:
                started = time.monotonic()
                if not self._open_with_backoff():
                    self._finish(None if self._stop.is_set() else self.down_at_start)
                    return
                log.warning("%s is up, %.0f s after the start", self.uri, time.monotonic() - started)
            while not self._stop.is_set():
                got = self._read()
                if got is not None:
                    self._publish(*got)
                    continue
                if self._stop.is_set():
                    break
                ended = self._ended()
                if ended or not self.reconnect:
                    self._finish(None if ended else SourceError(f"{self.uri}: reading failed (stream dropped)"))
                    return
                if not self._reopen():
                    self._finish(SourceError(f"{self.uri}: could not reconnect after {self.stats.disconnects} drop(s)"))
                    return
        except Exception as exc:
            self._finish(exc)
            return
        self._finish()

    # --- the consumer side ---------------------------------------------------------------------
    def take(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout`` s; None on timeout.

        Raises:
            StopIteration: at end of stream.
            SourceError: when the source failed.
        """
        with self._condition:
            if self._newest is None and not self._finished:
                self._condition.wait(timeout)
            frame, self._newest = self._newest, None
            self._condition.notify_all()  # a reader keeping every frame waits for the slot to empty
            if frame is None and self._finished:
                if self._error is not None:
                    raise self._error
                raise StopIteration
            return frame

    def __iter__(self) -> Iterator[Frame]:
        self.ensure_started()
        waited = 0.0
        while True:
            try:
                frame = self.take(0.1)
            except StopIteration:
                return
            if frame is not None:
                waited = 0.0
                yield frame
                continue
            waited += 0.1
            if waited >= self.read_timeout and not self.reconnecting:
                self.stats.read_timeouts += 1
                raise SourceTimeoutError(f"{self.uri}: no frame for {self.read_timeout:g} s")

    def interrupt(self) -> None:
        self.close()  # its reader thread hands frames over; the consumer waits on it with a timeout

    def close(self) -> None:
        self._stop.set()
        with self._closing:
            if self._thread is not None:
                self._thread.join(timeout=5.0)
                self._thread = None
            self._release()


class CaptureSource(LiveSource):
    """A camera (index or device path) or a network stream read through OpenCV/FFmpeg.

    Args:
        target: camera index, ``/dev/videoN``, or an ``rtsp://``/``http(s)://`` URL.
        tcp: RTSP over TCP (``rtsp_transport;tcp``) instead of UDP.
        open_timeout: seconds to wait for the stream to open.
        read_timeout: seconds without a frame before a read counts as failed.
        reconnect: reopen with backoff when the stream drops (default for network streams).
        camera_mode: the size, rate and format to ask a camera for (:class:`~realtime.capture.camera.CameraMode`).
        wait_if_down: a stream that does not open is opened in the background instead (:meth:`LiveSource.start`).
    """

    def __init__(self, target: str | int, tcp: bool = True, open_timeout: float = 10.0, read_timeout: float = 10.0,
                 reconnect: bool | None = None, camera_mode: CameraMode | None = None, wait_if_down: bool = False,
                 **options: float) -> None:
        self.target, self.camera_mode = target, camera_mode
        self.is_stream = isinstance(target, str) and "://" in target
        self.color = None if self.is_stream else TRUE_COLOR  # a camera's frames: its own YUYV or JPEG decoded
        self._color_asked = False  # a stream's colour tags, asked for at its first connection
        super().__init__(read_timeout=read_timeout, reconnect=self.is_stream if reconnect is None else reconnect,
                         **options)  # type: ignore[arg-type]
        self.uri = redact(str(target)) if self.is_stream else f"camera://{target}"
        self.tcp, self.open_timeout = tcp, open_timeout
        self.capture: cv2.VideoCapture | None = None
        self._last_seen: tuple[float, float] | None = None  # the last frame's source_ts and arrival (monotonic)
        self._shift_s = 0.0  # added to a stream's position, which starts again at 0 on every connection
        self._new_connection = False
        self.start(wait_if_down)

    def _open(self) -> None:
        self._new_connection = self._last_seen is not None
        if self.is_stream:
            capture = open_stream(str(self.target), self.open_timeout, self.read_timeout, self.tcp)
        else:
            index = int(self.target) if str(self.target).isdigit() else str(self.target)
            capture = cv2.VideoCapture(index)
            if not capture.isOpened():
                capture.release()
                raise SourceError(self._camera_problem())
            if self.camera_mode is not None:
                self.camera_mode.apply(capture, self.uri)
        self.capture = capture
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.sample_aspect = pixel_aspect(capture)
        if self.is_stream and not self._color_asked:  # once: a reconnect is to the same stream
            self._color_asked = True
            # an HTTP camera's JPEGs are true colour: no second connection to it is needed to tell
            jpeg = int(capture.get(cv2.CAP_PROP_FOURCC)) == cv2.VideoWriter.fourcc(*"MJPG")
            self.color = TRUE_COLOR if jpeg else stream_color_tags(str(self.target), min(self.open_timeout, 5.0),
                                                                    self.tcp)
        if not 0 < self.fps < 1000:
            self.fps = 0.0

    def _camera_problem(self) -> str:
        """Why a camera did not open, as far as the system tells (Linux: its /dev/video node)."""
        device = Path(f"/dev/video{self.target}" if str(self.target).isdigit() else str(self.target))
        if sys.platform.startswith("linux") and not device.exists():
            present = sorted(str(p) for p in Path("/dev").glob("video*"))
            return (f"no camera at {device} ({'cameras here: ' + ', '.join(present) if present else 'no /dev/video* here'}"
                    "); give another index or path, or a file or stream")
        return (f"cannot open camera {self.target}: it exists but did not start (in use by another program, or no "
                "permission: add yourself to the video group)")

    def _grab(self) -> np.ndarray | None:
        """The next frame of the open capture, or None when reading failed."""
        if self.capture is None:
            return None
        ok, bgr = self.capture.read()
        return bgr if ok else None

    def _read(self) -> tuple[np.ndarray, float] | None:
        bgr = self._grab()
        if bgr is None or self.capture is None:
            return None
        # a stream's position (0.0 for its first frame), going on after a reconnect from the last frame's by the time
        # it took; a camera without a clock says 0.0 for every frame
        position, now = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, time.monotonic()
        if not self.is_stream:
            return bgr, position if position > 0 else now
        if self._new_connection and self._last_seen is not None:
            self._shift_s = self._last_seen[0] + (now - self._last_seen[1]) - position
            self._new_connection = False
        self._last_seen = position + self._shift_s, now
        return bgr, self._last_seen[0]

    def _release(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None
