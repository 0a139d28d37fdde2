"""Frame sources. One string picks the kind: :func:`open_source`.

Accepted forms (normalised to ``scheme://location``, then looked up in :data:`SOURCES`):

=========================================================  ===============================================
``clip.mp4``, ``clip.gif``, ``file://clip.mp4``            video file (anything OpenCV/FFmpeg reads)
``frames/``, ``frames/*.png``, ``images://frames``         image folder or glob
``0``, ``/dev/video0``, ``camera://0``                     camera (live)
``0?size=1280x720&fps=30&format=mjpg``                     camera asked for a mode (any of the three)
``rtsp://[user:pass@]host[:port]/path``                    network stream (live, reconnects)
``rtmp://server/app/stream`` (``rtmps://``)                 RTMP stream from a server or camera (live, reconnects)
``udp://239.0.0.1:1234``, ``tcp://encoder:5000``           MPEG-TS stream (live, reconnects), multicast too
``http(s)://host/cam.mjpg``                                network stream (live, reconnects)
``http(s)://host/live.m3u8`` (or served as HLS)            live HLS: every frame, ends with the event
``http(s)://host/clip.mp4``, ``vod.m3u8`` (ended)          a file on a web server (its length known): read as a file
``-`` (``stdin://``)                                       a stream piped in (``ffmpeg ... -f mpegts - |``): every frame
                                                           (``--live``: the newest frame, as a camera's)
``synthetic:``, ``synthetic:1280x720@30?frames=300``       moving test pattern (``&live=1``: real time)
``sample:carphone``                                        small real clip with a person (fetched once)
=========================================================  ===============================================

Example:
    >>> normalise_uri("frames/*.png"), normalise_uri("0"), normalise_uri("synthetic:640x360@30")
    ('images://frames/*.png', 'camera://0', 'synthetic://640x360@30')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from engines.errors import ConfigError, SourceError
from realtime.capture.base import Source
from realtime.capture.camera import CameraMode
from realtime.capture.files import (
    IMAGE_SUFFIXES,
    ImageFolderSource,
    SourceNotFoundError,
    VideoFileSource,
    image_paths,
)
from realtime.capture.hls import HLS_TYPES, HlsSource, hls_playlist_type, hls_variant, is_hls
from realtime.capture.live import CaptureSource, LiveSource, SourceTimeoutError, open_stream, redact
from realtime.capture.sample import SampleSource
from realtime.capture.stdin import LiveStdinSource, StdinSource
from realtime.capture.synthetic import LiveSyntheticSource, SyntheticSource, parse_synthetic

FORMS_HELP = ("video file, image folder or glob, camera index or /dev/videoN, rtsp://, rtmp://, udp://, tcp:// or http(s):// "
              "stream, - (a stream piped in), synthetic:[WxH@FPS], sample:carphone")


@dataclass(frozen=True)
class SourceOptions:
    """Settings that some kinds of source use (each kind takes the ones that apply to it).

    Args:
        realtime: pace files, samples and the synthetic pattern at their fps (None: off here; a pipeline turns it
            on when an output is watched as it comes — a window, a browser preview, an RTSP or RTMP stream).
        tcp: RTSP over TCP.
        open_timeout: seconds to wait for a stream or camera to open.
        read_timeout: seconds without a frame before giving up (or reconnecting).
        reconnect: reconnect dropped streams (None: yes for network streams, no for cameras).
        live: read ``-`` (standard input) as a live stream, the newest frame kept (default: every frame).
        wait_if_down: a stream that does not open (``rtsp://``, ``rtmp://``, ``udp://``, ``tcp://``, an ``http(s)://``
            camera or ``.m3u8`` playlist) is opened in the background (the reconnect backoff) instead of failing: the
            pipeline's choice for one of several sources.
    """

    realtime: bool | None = None
    tcp: bool = True
    open_timeout: float = 10.0
    read_timeout: float = 10.0
    reconnect: bool | None = None
    live: bool = False
    wait_if_down: bool = False

    def __post_init__(self) -> None:
        for name in ("open_timeout", "read_timeout"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise ConfigError(f"--{name.replace('_', '-')} must be a number of seconds > 0, got {value}")


def _file(location: str, o: SourceOptions) -> Source:
    return VideoFileSource(location, realtime=bool(o.realtime))


def _images(location: str, o: SourceOptions) -> Source:
    return ImageFolderSource(location)


def _capture(location: str, o: SourceOptions, scheme: str) -> Source:
    mode = None
    if scheme == "camera":
        location, _, query = location.partition("?")
        mode = CameraMode.parse(query)
    target = location if scheme == "camera" else f"{scheme}://{location}"
    return CaptureSource(target, tcp=o.tcp, open_timeout=o.open_timeout, read_timeout=o.read_timeout,
                         reconnect=o.reconnect, camera_mode=mode, wait_if_down=o.wait_if_down and scheme != "camera")


def _web(location: str, o: SourceOptions, scheme: str) -> Source:
    """``http(s)://``: a file on a web server (its length is known) is read like a local file, every frame in
    order; a live HLS playlist, every frame until the event ends; anything else (an MJPEG camera) is a live
    stream, newest frame first."""
    url = f"{scheme}://{location}"
    # a master playlist: its largest rendition (FFmpeg reads them all); a live one without .m3u8, known by its type
    # only once open, is resolved by HlsSource (asking every URL first would be one more request to every camera)
    read = hls_variant(url, o.open_timeout) if is_hls(url) else url
    try:
        capture = open_stream(read, o.open_timeout, o.read_timeout, resume=True)
    except SourceError as exc:
        kind = None if is_hls(url) else hls_playlist_type(url, o.open_timeout)
        if kind and kind not in HLS_TYPES:  # FFmpeg reads a playlist only by its name or its type
            raise SourceError(f"{redact(url)} is an HLS playlist served as {kind} at a path without .m3u8, which FFmpeg "
                              "will not read; serve it as application/vnd.apple.mpegurl or under a .m3u8 path") from exc
        if o.wait_if_down and is_hls(url):  # one of several live streams: an HLS event not begun, a server down
            return HlsSource(url, open_timeout=o.open_timeout, read_timeout=o.read_timeout, reconnect=o.reconnect,
                             wait_if_down=True)
        if o.wait_if_down and kind is None:  # one of several live streams: a camera, down
            return _capture(location, o, scheme)
        raise
    if capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
        source = VideoFileSource(read, realtime=bool(o.realtime), capture=capture, timeout=(o.open_timeout,
                                                                                             o.read_timeout))
        source.uri = redact(url)  # named as given
        return source
    capture.release()  # live: its reader thread opens it again, and handles its drops itself
    if is_hls(url) or hls_playlist_type(url, o.open_timeout):
        return HlsSource(url, open_timeout=o.open_timeout, read_timeout=o.read_timeout, reconnect=o.reconnect)
    return _capture(location, o, scheme)


def _synthetic(location: str, o: SourceOptions) -> Source:
    if parse_synthetic(location)[4]:
        return LiveSyntheticSource(location, read_timeout=o.read_timeout)
    return SyntheticSource(location, realtime=bool(o.realtime))


def _sample(location: str, o: SourceOptions) -> Source:
    return SampleSource(location, realtime=bool(o.realtime))


SOURCES: dict[str, Callable[[str, SourceOptions], Source]] = {
    "file": _file,
    "images": _images,
    "camera": lambda loc, o: _capture(loc, o, "camera"),
    "rtsp": lambda loc, o: _capture(loc, o, "rtsp"),
    "udp": lambda loc, o: _capture(loc, o, "udp"),  # MPEG-TS over UDP, multicast included (an encoder's, IPTV)
    "tcp": lambda loc, o: _capture(loc, o, "tcp"),  # MPEG-TS over a TCP connection to an encoder
    "rtsps": lambda loc, o: _capture(loc, o, "rtsps"),
    "rtmp": lambda loc, o: _capture(loc, o, "rtmp"),  # from nginx-rtmp, SRS, MediaMTX, a camera's RTMP server
    "rtmps": lambda loc, o: _capture(loc, o, "rtmps"),
    "http": lambda loc, o: _web(loc, o, "http"),
    "https": lambda loc, o: _web(loc, o, "https"),
    "synthetic": _synthetic,
    "sample": _sample,
    "stdin": lambda loc, o: LiveStdinSource(o.read_timeout) if o.live else StdinSource(realtime=bool(o.realtime)),
}
RELAYED = ("srt", "rist")  # stream protocols to relay through standard input (-i - --live)
_DEVICE = re.compile(r"^/dev/video\d+$")


def normalise_uri(text: str) -> str:
    """Turn a user's source string into ``scheme://location`` (see the module doc for the forms).

    Raises:
        SourceError: an empty string, or one that could mean two things (a camera index that is also a file name).
    """
    text = text.strip()
    if not text:  # not the current folder's images: an unset variable ("-i $CAMERA") must not pick a source
        raise SourceError(f"the source is empty; give {FORMS_HELP}")
    for short in ("synthetic:", "sample:"):
        if text.startswith(short) and not text.startswith(short + "//"):
            return f"{short}//{text[len(short):]}"
    if "://" in text:
        return text
    if text == "-":
        return "stdin://"
    device = text.partition("?")[0]  # a camera may ask for a mode: 0?size=1280x720&fps=30&format=mjpg
    if device.isdigit():
        if Path(text).exists():
            raise SourceError(f"{text!r} is both a camera index and a file here; write camera://{text} or ./{text}")
        return f"camera://{text}"
    if _DEVICE.match(device):
        return f"camera://{text}"
    if any(ch in text for ch in "*?[") or Path(text).is_dir() or Path(text).suffix.lower() in IMAGE_SUFFIXES:
        return f"images://{text}"
    return f"file://{text}"


def open_source(text: str, options: SourceOptions | None = None) -> Source:
    """Open a source from one string.

    Raises:
        SourceNotFoundError: a path that does not exist.
        SourceError: an unknown scheme, or a source that cannot be opened or read.

    Example:
        >>> with open_source("synthetic:64x48@10?frames=1") as source:
        ...     next(iter(source)).resolution_wh
        (64, 48)
    """
    uri = normalise_uri(str(text))
    scheme, location = uri.split("://", 1)
    if scheme in RELAYED:  # FFmpeg reads it, but not the FFmpeg inside OpenCV and PyAV's wheels
        address, query, _ = redact(uri).partition("?")  # its query may hold a passphrase
        raise SourceError(f"{scheme}:// is not read directly (this FFmpeg has no {scheme.upper()}); relay it through a "
                          f"pipe: ffmpeg -i '{address}{query and '?...'}' -c copy -f mpegts - | realtime-mask run -i - "
                          "--live ...")
    if scheme not in SOURCES:
        raise SourceError(f"unknown source scheme '{scheme}://' in {redact(uri)!r}; accepted: {FORMS_HELP}")
    options = options or SourceOptions()
    if options.live and scheme != "stdin":
        raise ConfigError(f"--live is for a stream piped in (-i -), not {redact(uri)}: cameras and streams are read "
                          "live already, files every frame (--realtime paces them)")
    return SOURCES[scheme](location, options)


def source_files(source: str | Source) -> list[Path]:
    """The files a source reads: a video file, or each image of a folder or glob; none for cameras, streams, patterns.

    Example:
        >>> source_files("synthetic:64x48@10"), source_files("rtsp://cam.local/s")
        ([], [])
    """
    if isinstance(source, VideoFileSource):
        return [source.path] if source.path is not None else []
    if isinstance(source, ImageFolderSource):
        return list(source.paths)
    if not isinstance(source, str):
        return []
    try:
        scheme, location = normalise_uri(source).split("://", 1)
    except SourceError:
        return []  # opening it says what is wrong
    if scheme == "file":
        return [Path(location)] if Path(location).is_file() else []
    return image_paths(location) if scheme == "images" else []


__all__ = [
    "FORMS_HELP",
    "SOURCES",
    "CaptureSource",
    "ImageFolderSource",
    "LiveSource",
    "LiveStdinSource",
    "Source",
    "SourceNotFoundError",
    "SourceOptions",
    "SourceTimeoutError",
    "StdinSource",
    "VideoFileSource",
    "normalise_uri",
    "open_source",
    "redact",
    "source_files",
]
