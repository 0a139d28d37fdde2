"""A stream piped into standard input (``-i -``): read as a file, every frame in order, the writer setting the pace
(:class:`StdinSource`), or with ``--live`` as a camera, the newest frame kept (:class:`LiveStdinSource`).

FFmpeg reads through a pipe of ours that a thread fills from standard input (:class:`StdinPipe`), so that a run can
stop at once: FFmpeg blocked on standard input itself would hold a stop signal until the writer sent more. OpenCV's
FFmpeg reads it, or PyAV's for a codec OpenCV's cannot decode (AV1), told from the stream's first bytes.

Example:
    >>> with StdinSource() as source:  # doctest: +SKIP
    ...     first = next(iter(source))
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time

import av
import cv2
import numpy as np

from engines.errors import SourceError
from realtime.capture.files import VideoFileSource
from realtime.capture.live import LiveSource
from realtime.video_decoding import OPENCV_DECODES, ColorTags, PyAVCapture, color_tags, video_codec

NOT_VIDEO = "standard input is not video FFmpeg can read; pipe MPEG-TS, Matroska or another stream format " \
    "(ffmpeg ... -f mpegts -)"
NO_FRAME = "standard input gave no frame FFmpeg could decode: an MP4 must have its index at the start to be piped " \
    "(ffmpeg -movflags +faststart), or pipe MPEG-TS or Matroska"
HEAD_BYTES = 4 << 20  # what is kept of the input's start, to tell what it holds when no frame decodes
CODEC_BYTES = 64 << 10  # what is read of it before its codec is told (MPEG-TS and Matroska say it in their first kB)
CODEC_WAIT_S = 5.0  # the longest a slow writer is waited for, to tell the codec


class StdinPipe:
    """Standard input, copied by a thread into a pipe that FFmpeg reads as ``pipe:N`` until the input ends or
    :meth:`interrupt` (closing the pipe is FFmpeg's end of stream).

    Raises:
        SourceError: standard input is a terminal.
    """

    def __init__(self) -> None:
        if os.isatty(0):
            raise SourceError("-i - reads video from standard input, which is a terminal here; pipe a stream into it "
                              "(ffmpeg -i INPUT -c copy -f mpegts - | realtime-mask run -i - ...) or give a file")
        self._read_end: int | None
        self._read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        self._stopped = threading.Event()
        self.head = bytearray()  # the input's first HEAD_BYTES
        self._head_grew = threading.Condition()  # notified as the head grows, and when the input ends
        self._ended = False
        self._relay = threading.Thread(target=self._copy, args=(write_end,), name="stdin-relay", daemon=True)
        self._relay.start()

    def open_capture(self) -> cv2.VideoCapture | PyAVCapture:
        """FFmpeg reading the pipe: OpenCV's, or PyAV's for a codec OpenCV's cannot decode (AV1); raises SourceError
        when what comes is not video."""
        codec = self._codec()
        if codec is not None and codec not in OPENCV_DECODES:
            try:
                return PyAVCapture(os.fdopen(self._read_fd(), "rb", closefd=False))
            except (av.FFmpegError, OSError, IndexError):  # its first bytes said video: none of it came
                raise self.no_frame() from None
        capture = cv2.VideoCapture(f"pipe:{self._read_fd()}", cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise SourceError(NOT_VIDEO)
        return capture

    def _read_fd(self) -> int:
        if self._read_end is None:
            raise SourceError("standard input was closed")
        return self._read_end

    def _codec(self) -> str | None:
        """The input's video codec, told from its first bytes as they come (MPEG-TS and Matroska say it in their
        first kB); None when its first :data:`CODEC_BYTES`, all of it if shorter, or what came in
        :data:`CODEC_WAIT_S` if slower, do not say."""
        deadline, tried = time.monotonic() + CODEC_WAIT_S, 0
        while True:
            with self._head_grew:
                while len(self.head) == tried and not self._ended and (left := deadline - time.monotonic()) > 0:
                    self._head_grew.wait(left)
                data, ended = bytes(self.head), self._ended
            tried = len(data)
            if (codec := video_codec(data)) is not None or ended or tried >= CODEC_BYTES or \
                    time.monotonic() >= deadline:
                return codec
            time.sleep(0.02)  # a writer sending little at a time: asked again once more has come

    def _copy(self, write_end: int) -> None:
        try:
            while not self._stopped.is_set():
                if not select.select([0], [], [], 0.1)[0]:
                    continue
                data = memoryview(os.read(0, 1 << 16))
                if not data:
                    return
                if len(self.head) < HEAD_BYTES:
                    with self._head_grew:
                        self.head += data[:HEAD_BYTES - len(self.head)]
                        self._head_grew.notify_all()
                while data and not self._stopped.is_set():
                    if select.select([], [write_end], [], 0.1)[1]:
                        with contextlib.suppress(BlockingIOError):
                            data = data[os.write(write_end, data):]
        except OSError:
            return  # standard input or our pipe failed: FFmpeg sees the end
        finally:
            os.close(write_end)
            with self._head_grew:
                self._ended = True
                self._head_grew.notify_all()

    def color(self) -> ColorTags | None:
        """The colour tags of the stream that came (read from its first bytes, which FFmpeg has probed once the
        capture is open): OpenCV decodes by them, so the outputs state them too."""
        return color_tags(bytes(self.head))

    def no_frame(self) -> SourceError:
        """The error for an input that gave no frame: its codec named when neither OpenCV's FFmpeg nor PyAV's
        decodes it, else what usually causes it."""
        codec = video_codec(bytes(self.head))
        if codec is None or codec in OPENCV_DECODES:
            return SourceError(NO_FRAME)
        return SourceError(f"standard input's {codec} video gave no frame (neither OpenCV's FFmpeg nor PyAV's "
                           "decoded one); convert it on the way in (ffmpeg -i INPUT -c:v libx264 -f mpegts - | "
                           "realtime-mask run -i - ...)")

    def interrupt(self) -> None:
        """Stop copying: FFmpeg's read ends."""
        self._stopped.set()
        self._relay.join(timeout=5.0)

    def close(self) -> None:
        self.interrupt()
        if self._read_end is not None:
            with contextlib.suppress(OSError):  # FFmpeg's pipe protocol leaves it open; never mind if not
                os.close(self._read_end)
            self._read_end = None


class StdinSource(VideoFileSource):
    """Every frame of a video stream piped into standard input (``-i -``), in order, as a file's: the writer sets the
    pace (``ffmpeg -i srt://... -c copy -f mpegts - | realtime-mask run -i - ...``). Any stream FFmpeg reads from a
    pipe: MPEG-TS, Matroska, NUT, MJPEG, GIF, an MP4 with its index at the start. As any reader of a pipe it waits
    for the writer however long that takes; the run ends when the pipe closes, or when it is stopped.

    Raises:
        SourceError: standard input is a terminal, or what comes is not video.
    """

    rereadable = False  # read once: its sound cannot be copied

    def __init__(self, realtime: bool = False) -> None:
        self._pipe = StdinPipe()
        try:
            super().__init__("pipe:0", realtime=realtime, capture=self._pipe.open_capture())
        except BaseException:
            self._pipe.close()
            raise
        self.uri, self.color = "stdin://", self._pipe.color()

    def _no_frame(self) -> SourceError:
        return self._pipe.no_frame()

    def interrupt(self) -> None:
        self._pipe.interrupt()

    def close(self) -> None:
        self._pipe.interrupt()
        super().close()
        self._pipe.close()


class LiveStdinSource(LiveSource):
    """A live stream piped into standard input (``-i - --live``: ``ffmpeg -i srt://... -c copy -f mpegts - |``),
    read as a camera is: in its own thread, the newest frame kept and stale ones dropped and counted, so that a run
    slower than the stream does not fall ever further behind it. The run ends when the pipe closes.

    Args:
        read_timeout: seconds without a frame before the run ends with an error.

    Raises:
        SourceError: standard input is a terminal, or what comes is not video.
    """

    def __init__(self, read_timeout: float = 10.0) -> None:
        super().__init__(read_timeout=read_timeout, reconnect=False)
        self.uri = "stdin://?live"
        self.capture: cv2.VideoCapture | PyAVCapture | None = None
        self._pipe = StdinPipe()
        try:
            self.start()
        except BaseException:
            self._pipe.close()
            raise

    def _open(self) -> None:
        self.capture = self._pipe.open_capture()
        self.color = self._pipe.color()
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 0.0

    def _read(self) -> tuple[np.ndarray, float] | None:
        if self.capture is None:
            return None
        ok, bgr = self.capture.read()
        if not ok:
            if self.stats.captured == 0:
                raise self._pipe.no_frame()
            return None
        return bgr, self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0

    def _ended(self) -> bool:
        return True  # a pipe that fails has ended: there is nothing to reconnect to

    def _release(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    def close(self) -> None:
        self._pipe.interrupt()  # FFmpeg's read in the reader thread ends
        super().close()
        self._pipe.close()
