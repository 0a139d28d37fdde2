"""``-o rtmp://server/app/KEY``: the masked video published to an RTMP server — a streaming service's ingest
(YouTube, Twitch), nginx-rtmp, SRS, MediaMTX.

H.264 without delay (x264's zerolatency) with a key frame every 2 s (what streaming services ask for) in FLV, sent
by a thread of its own, so a slow or stalled network holds nothing else: from a live source the newest frame waits
for it and older ones are skipped (counted); from a file each frame waits, as for ``-o -`` (the pipeline plays a
file at its own pace to this output: a service expects the stream so). The first frame is published before the
run goes on, so a wrong address or stream key is a one-line error; a connection lost later is opened again with a
capped backoff (0.5 s doubling to 4 s) while the run goes on, each new connection a new publication starting with
a key frame. The stream key (the URL's last part) is a secret: every message shows it as ``***``.

Example:
    >>> RtmpSink.shown("rtmp://a.rtmp.youtube.com/live2/abcd-1234")
    'rtmp://a.rtmp.youtube.com/live2/***'
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.parse
from pathlib import Path

import numpy as np

from engines.errors import InputShapeError, OutputError
from realtime.outputs.base import Sink, stop_noted, to_even_sides
from realtime.outputs.files import H264_OPTIONS, PyAVWriter, VideoFormat
from realtime.outputs.screen import StopRequested

log = logging.getLogger(__name__)

RTMP_FORMAT = VideoFormat("libx264", {**H264_OPTIONS, "tune": "zerolatency"},
                          {"flvflags": "no_duration_filesize"}, muxer="flv",  # a stream has no end to seek back to
                          key_frame_s=2.0)
BACKOFF_S = (0.5, 4.0)  # the first wait before opening a lost connection again, and the longest



class RtmpSink(Sink):
    """Publishes frames to ``rtmp://`` or ``rtmps://`` (see the module doc).

    Raises:
        OutputError: not an RTMP URL with an application and a stream name; the first frame could not be published.
    """

    def __init__(self, url: str, fps: float = 25.0, audio_from: str | Path | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname or parts.path.strip("/").count("/") < 1:
            raise OutputError(f"RTMP output needs rtmp://SERVER/APP/STREAM_KEY, got {self.shown(url)}")
        self.url, self.uri = url, self.shown(url)
        self.fps = fps if 0 < fps <= 1000 else 25.0
        self.format = RTMP_FORMAT
        self.audio_from = audio_from  # a file source's sound, sent with the frames (--audio copy)
        self._first_ts: float | None = None  # the first frame's time: where the sound of a later connection starts
        self.frames_written = self.skipped = self.reconnects = 0
        self._writer: PyAVWriter | None = None
        self._pending: tuple[np.ndarray, float | None] | None = None  # the frame the sender takes next
        self._changed = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    @staticmethod
    def shown(url: str) -> str:
        """The URL with its stream key (and any password) hidden, for messages."""
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        path = parts.path.rsplit("/", 1)[0] + "/***" if parts.path.strip("/") else parts.path
        return urllib.parse.urlunsplit((parts.scheme, host, path, "", ""))

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputShapeError(f"{self.uri} takes uint8 HxWx3 BGR frames, got {image.shape} {image.dtype}")
        image = to_even_sides(self.fit_to_first_size(image))
        if self._thread is None:  # the first frame here: a wrong address or key ends the run now, said once
            try:
                self._send(image, present_ts)
            except Exception as exc:
                self._drop_writer()
                raise OutputError(f"cannot publish to {self.uri}: {self._why(exc)}; check the address and the stream "
                                  "key, and that the server is up") from exc
            self._thread = threading.Thread(target=self._run, name="rtmp-sender", daemon=True)
            self._thread.start()
            return
        with self._changed:
            if not self.live:  # a file: every frame, each waiting for the one before to be sent
                while self._pending is not None:
                    if stop_noted():
                        raise StopRequested  # a stop signal came while the network did not take the frame
                    self._changed.wait(0.1)
            elif self._pending is not None:
                if not self.skipped:
                    log.warning("%s is behind: frames for it are skipped until it catches up", self.uri)
                self.skipped += 1
            self._pending = (image, present_ts)
            self._changed.notify_all()

    def _send(self, image: np.ndarray, present_ts: float | None) -> None:
        if self._writer is None:  # a connection: the sound from this frame's time in the source on (--audio copy)
            at_s = self.frames_written / self.fps if present_ts is None else present_ts - (self._first_ts or present_ts)
            self._first_ts = present_ts if self._first_ts is None else self._first_ts
            self._writer = PyAVWriter(self.url, self.fps, (image.shape[1], image.shape[0]), self.format,
                                      timed=present_ts is not None, sample_aspect=self.sample_aspect, color=self.color,
                                      audio_from=self.audio_from, audio_from_s=at_s)
        self._writer.write(image, present_ts)
        self.frames_written += 1

    @staticmethod
    def _why(exc: BaseException) -> str:
        return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # the connection is gone: nothing left to flush
                writer.container.close()

    def _run(self) -> None:
        delay = BACKOFF_S[0]
        while True:
            with self._changed:
                while self._pending is None and not self._closing:
                    self._changed.wait()
                if self._pending is None:
                    return
                image, present_ts = self._pending
            try:
                self._send(image, present_ts)
            except Exception as exc:
                if delay == BACKOFF_S[0]:  # it was publishing: said once, not at every try
                    log.warning("%s: connection lost (%s); publishing again when it opens", self.uri, self._why(exc))
                self._drop_writer()
                with self._changed:
                    self._changed.wait(delay)  # meanwhile a newer frame may take its place
                    if self._closing:
                        return
                delay = min(delay * 2.0, BACKOFF_S[1])
                continue
            if delay > BACKOFF_S[0]:
                self.reconnects += 1
                log.warning("%s: publishing again", self.uri)
                delay = BACKOFF_S[0]
            with self._changed:
                if self._pending is not None and self._pending[0] is image:
                    self._pending = None
                self._changed.notify_all()

    def close(self) -> None:
        """Send the frame waiting, if the connection takes it within a few seconds, then end the publication."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(5.0)
            if self._thread.is_alive():  # the network took nothing for 5 s: the publication is left as it is
                log.warning("%s: the network took nothing for 5 s at the end; left unfinished", self.uri)
                return
            self._thread = None
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # a connection lost at the end: what was sent is all there is
                writer.release()
        if self.skipped or self.reconnects:
            log.warning("%s: %d frames published, %d skipped while it was behind, %d reconnects", self.uri,
                        self.frames_written, self.skipped, self.reconnects)
