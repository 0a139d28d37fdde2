"""``-o -``: the masked video on standard output, for a player or ffmpeg to read as it comes.

    realtime-mask run -i 0 -o - | ffplay -
    realtime-mask run -i rtsp://cam/1 -o - | ffmpeg -i - -c copy -f mpegts srt://relay:9000

MPEG-TS (the stream format ffmpeg, ffplay, mpv, VLC and GStreamer read from a pipe) with H.264 encoded without
delay (x264's zerolatency: no B-frames, no look-ahead, which held 11 frames back), each frame in the pipe as soon
as it is encoded, at its time (:class:`~realtime.outputs.files.EncodedVideoSink`; the stream's clock starts at 1.4 s,
as FFmpeg's MPEG-TS does). Not Matroska: its muxer holds each frame until the next comes, so a camera that stalls
would leave its last frame unseen. When the reader goes away (the player is closed, ``| head``) the run stops as
when a display window is closed: its other outputs finalised, exit code 0, a warning saying why. ``--metadata -``
and ``--stats -`` write their JSON to standard output instead (one of the three at a time).

Example:
    >>> STDOUT_FORMAT.muxer, STDOUT_FORMAT.options["tune"]
    ('mpegts', 'zerolatency')
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from engines.errors import OutputError
from realtime.outputs.base import stop_noted
from realtime.outputs.files import H264_OPTIONS, EncodedVideoSink, VideoFormat
from realtime.outputs.screen import StopRequested

log = logging.getLogger(__name__)

STDOUT = "-"  # the output string (and --metadata / --stats value) that means standard output
STDOUT_FORMAT = VideoFormat("libx264", {**H264_OPTIONS, "tune": "zerolatency"},  # each packet to the pipe as muxed;
                            {"flush_packets": "1"}, muxer="mpegts", key_frame_s=2.0)  # a relay's viewers join at 2 s
LIVE_BACKLOG_S = 0.5  # a live source's frames are skipped while what the reader has not taken is older than this
FILE_BACKLOG = 8 << 20  # bytes not yet taken beyond which a file's frames wait for the reader (memory stays bounded)
_PIPE_BUF = 4096  # a pipe that select() says is writable takes this much without blocking (POSIX)


def silence_stdout() -> None:
    """Point standard output at the null device: its reader went away, and what is still buffered for it (Python's
    last flush at exit) must not fail with a traceback."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)



class StdoutRelay:
    """Bytes for a file descriptor (standard output: a video's muxed packets, metadata lines), handed over by a
    thread, so that the run never blocks on a reader that stopped reading (a paused player, a stalled network behind
    ffmpeg, a stuck ``jq``): it sees the backlog and decides, and a stop signal is never held by it. ``broken`` once
    the reader has gone (standard output is then pointed at the null device: :func:`silence_stdout`).

    Example:
        >>> import os
        >>> read_end, write_end = os.pipe()
        >>> relay = StdoutRelay(write_end)
        >>> relay.write(b"line\\n"); relay.close(); os.read(read_end, 100)
        5
        b'line\\n'
    """

    def __init__(self, fd: int = 1) -> None:
        self.fd, self.broken, self.backlog = fd, False, 0
        self._chunks: deque[tuple[float, bytes]] = deque()  # when each was queued, and its bytes
        self._changed = threading.Condition()
        self._closing = self._abandoned = False
        self._progress = time.monotonic()  # when the reader last took bytes
        self._thread = threading.Thread(target=self._run, name="stdout-relay", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        """Queue ``data`` (PyAV calls it with each muxed packet)."""
        with self._changed:
            if self.broken:
                raise BrokenPipeError(32, "the reader of standard output went away")
            self._chunks.append((time.monotonic(), bytes(data)))
            self.backlog += len(data)
            self._changed.notify_all()
        return len(data)

    @property
    def backlog_s(self) -> float:
        """How long the oldest bytes not yet taken by the reader have waited."""
        with self._changed:
            return time.monotonic() - self._chunks[0][0] if self._chunks else 0.0

    def wait_below(self, limit: int) -> bool:
        """Wait until fewer than ``limit`` bytes are queued; False when a stop signal came meanwhile."""
        with self._changed:
            while self.backlog >= limit and not self.broken:
                if stop_noted():
                    return False
                self._changed.wait(0.1)
        return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._chunks and not self._closing:
                    self._changed.wait()
                if not self._chunks or self._abandoned:
                    return
                chunk = self._chunks[0][1]
            sent = 0
            try:
                while sent < len(chunk) and not self._abandoned:
                    if select.select([], [self.fd], [], 0.1)[1]:
                        sent += os.write(self.fd, chunk[sent:sent + _PIPE_BUF])
                        self._progress = time.monotonic()
            except OSError:  # the reader went away (EPIPE), or the descriptor failed
                if self.fd == 1:
                    silence_stdout()
                with self._changed:
                    self.broken = True
                    self._chunks.clear()
                    self.backlog = 0
                    self._changed.notify_all()
                return
            with self._changed:
                self._chunks.popleft()
                self.backlog -= len(chunk)
                self._changed.notify_all()

    def close(self) -> None:
        """Hand over what is queued, unless the reader goes, or takes nothing for a second after a stop signal; then
        end the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        while self._thread.is_alive():
            self._thread.join(0.1)
            if stop_noted() and time.monotonic() - self._progress > 1.0:
                self._abandoned = True  # the rest is dropped: the reader had stopped reading


class StdoutSink(EncodedVideoSink):
    """The masked video as MPEG-TS H.264 on standard output (see the module doc).

    A reader that falls behind (a paused player, a stalled network behind ffmpeg) holds nothing else: from a live
    source, frames are skipped while what it has not taken is over :data:`LIVE_BACKLOG_S` old (``skipped`` counts
    them; the recording beside goes on); from a file, each frame waits for it, and a stop signal ends the wait.

    Raises:
        OutputError: standard output is a terminal (video would fill it with bytes).
    """

    def __init__(self, fps: float = 25.0, audio_from: str | Path | None = None) -> None:
        if os.isatty(1):
            raise OutputError("-o - writes the video to standard output, which is a terminal here; pipe it into a "
                              "player or ffmpeg (-o - | ffplay -) or give a file")
        self._relay = StdoutRelay(1)
        super().__init__(self._relay, STDOUT_FORMAT, fps, "stdout://")
        self.streamed_audio = audio_from  # a file source's sound, in the stream as the frames go (--audio copy)
        self.skipped, self.reader_gone = 0, False

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        if self._relay.broken:
            self._reader_gone()
        if self.live and self._relay.backlog_s > LIVE_BACKLOG_S:
            if not self.skipped:
                log.warning("the reader of standard output is behind: frames for it are skipped until it catches up")
            self.skipped += 1
            return
        if not self._relay.wait_below(FILE_BACKLOG):
            raise StopRequested  # a stop signal came while the reader did not read
        super().write(image, capture_ts, present_ts)

    def _reader_gone(self, cause: BaseException | None = None) -> None:
        self.reader_gone = True
        log.warning("the reader of standard output went away (broken pipe) after %d frames: stopping",
                    self.frames_written)
        raise StopRequested from cause

    def _on_error(self, exc: OSError) -> None:
        if isinstance(exc, BrokenPipeError) or self._relay.broken:
            self._reader_gone(exc)
        raise OutputError(f"cannot write the video to standard output: {exc.strerror}") from exc

    def close(self) -> None:
        try:
            if self.writer is not None:
                writer, self.writer = self.writer, None
                with contextlib.suppress(BrokenPipeError):  # gone at the end: what it read is all there is
                    writer.release()
        finally:
            self._relay.close()
            if self.skipped:
                log.warning("standard output: %d frames skipped while its reader was behind, %d written",
                            self.skipped, self.frames_written)
