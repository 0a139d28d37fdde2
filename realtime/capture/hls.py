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
import logging
import re
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass

import cv2
import numpy as np

from engines.errors import SourceError
from realtime.capture.live import CaptureSource, open_stream, redact
from realtime.frame import Clock

log = logging.getLogger(__name__)

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
    answer = _fetch_playlist(url, timeout)
    return None if answer is None else answer[0]


def hls_variant(url: str, timeout: float) -> str:
    """The playlist to read for ``url``: itself, or, for a master playlist (``#EXT-X-STREAM-INF``: the renditions
    of an adaptive stream, as a CDN or a broadcaster serves them), its largest video rendition (most pixels, then
    highest bandwidth), said once. FFmpeg alone reads a master playlist by downloading every rendition and OpenCV
    masks the first listed, often the smallest. ``url`` itself when it is not a playlist (only its first bytes are
    read: a camera's endless stream is not) or the server cannot be asked (FFmpeg then says why).

    Example:
        >>> hls_variant("http://127.0.0.1:9/live.m3u8", timeout=1)  # nothing listens there
        'http://127.0.0.1:9/live.m3u8'
    """
    answer = _fetch_playlist(url, timeout)
    if answer is None or b"#EXT-X-STREAM-INF" not in answer[1]:
        return url
    variants = parse_master_playlist(answer[1].decode("utf-8", "replace"))
    if not variants:
        return url
    best = max(variants, key=lambda v: (v.pixels, v.video, v.bandwidth))
    chosen = urllib.parse.urljoin(url, best.uri)
    if (url, chosen) not in _SAID:  # asked again at each connection: said once
        _SAID.add((url, chosen))
        log.warning("%s is a master playlist of %d renditions; reading the largest, %s (%s at %.2f Mbit/s); give a "
                    "rendition's own playlist to read another", redact(url), len(variants), redact(chosen),
                    best.resolution or "size not stated", best.bandwidth / 1e6)
    return chosen


_SAID: set[tuple[str, str]] = set()  # the master playlists whose rendition was said, with it


@dataclass(frozen=True)
class Variant:
    """One rendition of a master playlist: its playlist's URI and what ``#EXT-X-STREAM-INF`` says of it."""

    uri: str
    bandwidth: int
    resolution: str  # "1920x1080", or "" when not stated
    video: bool  # False for an audio-only rendition (CODECS lists no video codec)

    @property
    def pixels(self) -> int:
        width, _, height = self.resolution.partition("x")
        return int(width) * int(height) if width.isdigit() and height.isdigit() else 0


def parse_master_playlist(text: str) -> list[Variant]:
    """The renditions a master playlist lists (RFC 8216, 4.3.4.2), in its order.

    Example:
        >>> parse_master_playlist('#EXTM3U\\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,'
        ...                       'mp4a.40.2"\\nlow/index.m3u8\\n')
        [Variant(uri='low/index.m3u8', bandwidth=800000, resolution='640x360', video=True)]
    """
    variants, attributes = [], None
    for line in (line.strip() for line in text.splitlines()):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(_ATTRIBUTE.findall(line.partition(":")[2]))
        elif line and not line.startswith("#") and attributes is not None:
            codecs = attributes.get("CODECS", "").strip('"').lower()
            video = not codecs or any(c.strip().startswith(_VIDEO_CODECS) for c in codecs.split(","))
            bandwidth = attributes.get("BANDWIDTH", "0")
            variants.append(Variant(line, int(bandwidth) if bandwidth.isdigit() else 0,
                                    attributes.get("RESOLUTION", "").lower(), video))
            attributes = None
    return variants


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')  # an attribute list's NAME=value pairs (RFC 8216, 4.2)
_VIDEO_CODECS = ("avc", "hvc", "hev", "av01", "vp0", "vp8", "vp9", "mp4v", "dvh", "dva")


def _fetch_playlist(url: str, timeout: float, limit: int = 1 << 20) -> tuple[str, bytes] | None:
    """The type and the text (its first ``limit`` bytes, a byte-order mark taken off) of the HLS playlist the server
    answers at ``url``: one of an HLS type, or whose body starts with ``#EXTM3U``; None for anything else (of which
    16 bytes are read), or when the server does not answer within ``timeout`` s, fails or refuses. Credentials in
    the URL go as HTTP Basic; the certificate is not checked (FFmpeg, which reads the stream, does not either by
    default)."""
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
            if kind not in HLS_TYPES and not head.startswith(b"#EXTM3U"):
                return None
            return kind, head + response.read(limit)
    except (OSError, ValueError, http.client.HTTPException):
        return None


class HlsSource(CaptureSource):
    """A live HLS stream read through OpenCV/FFmpeg, every frame handed over (see the module doc).

    Args are :class:`~realtime.capture.live.CaptureSource`'s.
    """

    keeps_every_frame = True
    clock: Clock = "source_ts"
    _last_pts: float | None = None  # the last frame handed over, on the stream's own clock (in frames)
    _offset = 0.0  # frames added to the clock, so that it goes on from the last frame over a new timeline
    _reconnected = False
    _playlist: str | None = None  # the URL given; ``target`` is the rendition read, when it is a master playlist

    def _open(self) -> None:
        if self._playlist is None:
            self._playlist = str(self.target)
        self.target = hls_variant(self._playlist, self.open_timeout)  # asked again on each connection
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
