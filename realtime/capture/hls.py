"""Live HLS streams (``http(s)://host/live.m3u8``): every frame, in order, until the event ends.

An HLS server hands out whole segments (seconds of video) at once, so a camera's rule — the newest frame
wins — would drop most of every segment. Here the reader waits for the pipeline instead and the server's
playlist paces the run. A pipeline slower than the stream falls behind until FFmpeg skips the segments that
left the playlist: those frames are counted as dropped, from the gap in the stream's timestamps (``source_ts``
is the stream's own clock, continued across connections and, past a restarted encoder or the clock's wrap,
going on from the last frame's). A dropped connection is reopened at the live edge,
a few segments back: what was handed over already is not handed over again, and what left the playlist
meanwhile is counted as dropped. When the event ends (the playlist gets ``#EXT-X-ENDLIST``) the stream ends
cleanly; it is not reconnected, which would play the finished event again from the start of its playlist.

A playlist that has ended already (video on demand) has a known length and is read as a file by
:func:`realtime.capture.open_source`, not by this class.

A live playlist whose URL does not end in ``.m3u8`` (a CDN's ``manifest(format=m3u8-aapl)``, a tokenised path) is
known by what the server answers (:func:`hls_playlist_type`): its type, or a body that starts with ``#EXTM3U``.

Example:
    >>> is_hls("https://cdn.example.com/cam/index.m3u8?token=1"), is_hls("http://cam.local/video.mjpg")
    (True, False)
    >>> with HlsSource("http://127.0.0.1:8080/live.m3u8") as source:  # doctest: +SKIP
    ...     for frame in source:
    ...         print(frame.index, frame.source_ts, source.dropped)
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.parse
import urllib.request

import cv2
import numpy as np

from engines.errors import SourceError
from realtime.capture.live import CaptureSource, open_stream
from realtime.frame import Clock

HLS_SUFFIXES = (".m3u8", ".m3u")  # how RFC 8216 (section 4) names a playlist's URI
HLS_TYPES = ("application/vnd.apple.mpegurl", "audio/mpegurl", "application/x-mpegurl", "audio/x-mpegurl")  # 4, 8
# Timestamps further apart than this are another timeline (a restarted encoder, the MPEG-TS clock wrapping after
# 26.5 h), not a replay or a gap: a reconnect replays at most a few segments
_SAME_TIMELINE_S = 60.0


def is_hls(url: str) -> bool:
    """True for an HLS playlist's URL (its path ends in ``.m3u8`` or ``.m3u``; the query does not count)."""
    return urllib.parse.urlsplit(url).path.lower().endswith(HLS_SUFFIXES)


def hls_playlist_type(url: str, timeout: float) -> str | None:
    """The type the server gives ``url`` when it answers with an HLS playlist (an HLS type, or a body that starts
    with ``#EXTM3U``: RFC 8216, 4 and 8), else None — also when it cannot tell (no answer within ``timeout`` s, an
    error, credentials it refused): the URL is then opened as a camera, as FFmpeg would. Credentials in the URL are
    sent as HTTP Basic; the certificate is not checked (FFmpeg, which reads the stream, does not either by default).

    Example:
        >>> hls_playlist_type("http://127.0.0.1:9/live", timeout=1) is None  # nothing listens there
        True
    """
    parts = urllib.parse.urlsplit(url)
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])))
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    unchecked = ssl.create_default_context()
    unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=unchecked) as response:
            kind = response.headers.get_content_type()
            head = response.read(16).removeprefix(b"\xef\xbb\xbf")  # a byte-order mark, though RFC 8216 forbids one
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return kind if kind in HLS_TYPES or head.startswith(b"#EXTM3U") else None


class HlsSource(CaptureSource):
    """A live HLS stream read through OpenCV/FFmpeg, every frame handed over (see the module doc).

    Args are :class:`~realtime.capture.live.CaptureSource`'s.
    """

    keeps_every_frame = True
    clock: Clock = "source_ts"
    _last_pts: float | None = None  # the last frame handed over, on the stream's own clock (in frames)
    _offset = 0.0  # frames added to the clock, so that it goes on from the last frame over a new timeline
    _reconnected = False

    def _open(self) -> None:
        super()._open()
        self._reconnected = self._last_pts is not None

    def _read(self) -> tuple[np.ndarray, float] | None:
        if not self.fps:  # no frame rate, no clock in frames to follow
            return super()._read()
        while True:
            bgr = self._grab()
            if bgr is None or self.capture is None:
                return None
            # the stream's timestamps, in frames (OpenCV: in the time base of its fps) and, unlike the position,
            # continued across connections: an MPEG-TS clock
            pts = self.capture.get(cv2.CAP_PROP_PTS)
            last, near = self._last_pts, _SAME_TIMELINE_S * self.fps
            if last is not None:
                if self._reconnected and last - near <= pts <= last:
                    continue  # handed over before the drop: FFmpeg restarts a live playlist segments back
                if last < pts <= last + near:
                    self.stats.dropped += round(pts - last - 1)
                else:  # another timeline (back in time, or far ahead): source_ts goes on from the last frame's
                    self._offset += last + 1 - pts
            self._reconnected = False
            self._last_pts = pts
            return bgr, (pts + self._offset) / self.fps

    def _ended(self) -> bool:
        """A failed read is the event's end when the playlist now says so (FFmpeg then states its length)."""
        try:
            capture = open_stream(str(self.target), self.open_timeout, self.read_timeout)
        except SourceError:
            return False  # the server is gone for now: a drop, reconnected
        try:
            return bool(capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0)
        finally:
            capture.release()
