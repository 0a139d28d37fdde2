"""Where OpenCV's decoding falls short: a video file decoded by PyAV for the codecs OpenCV's own FFmpeg cannot decode,
the shape of a video's pixels, its colour tags, and why a file gives no frame.

OpenCV's wheel builds FFmpeg without a software AV1 decoder (its native ``av1`` decoder needs a hardware
one), so an AV1 file — a YouTube download, an OBS or a phone recording — opens there but gives no frame. PyAV's
wheel decodes AV1 with dav1d. ``PyAVCapture`` answers the part of ``cv2.VideoCapture`` a file source uses, with
the same frames: BGR, turned upright as the file's display matrix says (as OpenCV turns them), each at its time
from the stream's start.

Example:
    >>> from realtime.video_decoding import decodable_by_pyav
    >>> capture = decodable_by_pyav("clip-av1.mp4")  # doctest: +SKIP
    >>> ok, bgr = capture.read()  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

log = logging.getLogger(__name__)

_NO_IMAGE = np.empty((0, 0, 3), np.uint8)  # what ``read`` gives with False
OPENCV_DECODES = {"h264", "hevc", "mpeg4", "mpeg2video", "mjpeg", "vp8", "vp9", "prores", "ffv1", "gif", "png",
                  "rawvideo", "h263", "theora", "dnxhd"}  # video codecs OpenCV's own FFmpeg decodes (not AV1)


# FFmpeg's HTTP options that resume a file on a web server where a dropped connection left it (a range request), for
# up to 8 s: OpenCV's capture of such a file and PyAV's alike
WEB_RESUME = {"reconnect": "1", "reconnect_on_network_error": "1", "reconnect_delay_max": "8"}


class PyAVCapture:
    """The frames of a video file's first video stream, read as from ``cv2.VideoCapture``.

    Args:
        path: the video file, the URL of one on a web server, or a readable file object (a pipe).
        options: FFmpeg's options for opening it (:data:`WEB_RESUME` for a web server's file).
        timeout: seconds to open it, and to wait for each read.
    """

    def __init__(self, path: str | Path | BinaryIO, options: dict[str, str] | None = None,
                 timeout: tuple[float, float] | None = None) -> None:
        import av

        container = av.open(str(path) if isinstance(path, str | Path) else path, "r", options=options or {},
                            timeout=timeout)
        self._container: av.container.InputContainer | None = container
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self.codec = stream.codec_context.codec.canonical_name
        self._start = stream.start_time or 0
        self._time_base = float(stream.time_base or 0)
        self._fps = float(stream.average_rate or stream.guessed_rate or 0)
        self._count = int(stream.frames or 0)
        self._size = (stream.codec_context.width, stream.codec_context.height)
        self._aspect = stream.sample_aspect_ratio or Fraction(0, 1)
        self._frames: Iterator[av.VideoFrame] = self._container.decode(stream)
        self._position_ms = 0.0

    def isOpened(self) -> bool:  # cv2.VideoCapture's name
        return self._container is not None

    def read(self) -> tuple[bool, np.ndarray]:
        """The next frame, BGR and upright, as ``(True, frame)``; ``(False, empty)`` at the end or on a decode
        error (as OpenCV ends a damaged file)."""
        import av

        if self._container is None:
            return False, _NO_IMAGE
        try:
            frame = next(self._frames)
        except (StopIteration, av.FFmpegError):
            return False, _NO_IMAGE
        if frame.pts is not None and self._time_base:
            self._position_ms = (frame.pts - self._start) * self._time_base * 1000.0
        bgr = frame.to_ndarray(format="bgr24")
        turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns, as np.rot90 counts them
        return True, np.ascontiguousarray(np.rot90(bgr, turns)) if turns else bgr

    def get(self, prop: int) -> float:
        """The frame rate, frame count, size, pixel shape (SAR) or the last frame's time (ms) — what a file source
        reads."""
        width, height = self._size
        values = {cv2.CAP_PROP_FPS: self._fps, cv2.CAP_PROP_FRAME_COUNT: float(self._count),
                  cv2.CAP_PROP_POS_MSEC: self._position_ms, cv2.CAP_PROP_FRAME_WIDTH: float(width),
                  cv2.CAP_PROP_FRAME_HEIGHT: float(height), cv2.CAP_PROP_SAR_NUM: float(self._aspect.numerator),
                  cv2.CAP_PROP_SAR_DEN: float(self._aspect.denominator)}
        return values.get(prop, 0.0)

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


UNSPECIFIED = 2  # FFmpeg's AVCOL_*_UNSPECIFIED, for matrix, primaries and transfer alike
BT2020_MATRICES = (9, 10)  # AVCOL_SPC_BT2020_NCL, _CL: OpenCV's FFmpeg decodes them off by 10 levels; PyAV does not


@dataclass(frozen=True)
class ColorTags:
    """What a video says of its colours (FFmpeg's enum values): the matrix of its YUV, the primaries of its RGB and
    its transfer function (1: BT.709; 9, 9, 16: BT.2020 with PQ, HDR10; 18: HLG, a phone's HDR).

    Example:
        >>> ColorTags(matrix=1, primaries=1, transfer=1).stated
        True
    """

    matrix: int = UNSPECIFIED
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED

    @classmethod
    def of(cls, context: Any) -> ColorTags:
        """The tags of a PyAV video codec context (a decoder's, once it has read the stream's header); an image
        codec's frames (GIF, PNG, Motion JPEG) that state none are true colour (:data:`TRUE_COLOR`)."""
        tags = cls(int(context.colorspace), int(context.color_primaries), int(context.color_trc))
        return TRUE_COLOR if not tags.stated and context.codec.canonical_name in IMAGE_CODECS else tags

    @property
    def stated(self) -> bool:
        """True where the video says its matrix: a decoder uses it, not a guess by frame size."""
        return self.matrix != UNSPECIFIED




# Frames that are RGB as they are to be shown (images, a webcam's, the test pattern): sRGB, whose primaries are
# BT.709's; the matrix, BT.601, is the one their own decoding used (JPEG's; a webcam's YUYV's)
TRUE_COLOR = ColorTags(matrix=6, primaries=1, transfer=1)
IMAGE_CODECS = ("gif", "png", "apng", "mjpeg", "bmp", "webp")  # video of images: decoded as the images are


def color_tags(video: str | Path | bytes) -> ColorTags | None:
    """A video file's colour tags (its first video stream's), or those of a stream's first bytes (what came through
    a pipe: MPEG-TS, Matroska, ...); None when they cannot be read.

    Example:
        >>> color_tags("/nonexistent.mp4") is None, color_tags(b"not video") is None
        (True, True)
    """
    import io

    import av

    try:
        with av.open(io.BytesIO(video) if isinstance(video, bytes) else str(video)) as container:
            return ColorTags.of(container.streams.video[0].codec_context)
    except (av.FFmpegError, OSError, IndexError):
        return None


PROBED_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")  # servers that take a second viewer


def _takes_a_second_viewer(url: str) -> bool:
    """A server's stream (RTSP, RTMP, HTTP), or UDP to a multicast group, which every socket joined to it receives
    (FFmpeg's UDP sockets share a multicast port); not UDP to one host, whose datagrams one socket gets, nor a TCP
    sender, which may serve one client."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() in PROBED_SCHEMES:
        return True
    try:
        return parts.scheme.lower() == "udp" and ipaddress.ip_address(parts.hostname or "").is_multicast
    except ValueError:
        return False  # a host name: it may be one host


def stream_color_tags(url: str, timeout: float, tcp: bool = True) -> ColorTags | None:
    """A network stream's colour tags, read by PyAV over a second, short connection (OpenCV, which reads the
    stream, does not say them: 0.4 s for an RTSP camera on loopback, 1.7 s for a multicast MPEG-TS stream, which is
    listened to until its next key frame); None when it cannot tell, or for a stream a second connection could take
    from the first (UDP to one host, a TCP sender).

    Example:
        >>> stream_color_tags("udp://127.0.0.1:1234", timeout=1) is None
        True
    """
    import av

    if not _takes_a_second_viewer(url):
        return None
    options = {"analyzeduration": "500000", "probesize": "200000"}
    if url.lower().startswith("rtsp"):
        options["rtsp_transport"] = "tcp" if tcp else "udp"
    try:
        with av.open(url, options=options, timeout=timeout) as container:
            return ColorTags.of(container.streams.video[0].codec_context)
    except (av.FFmpegError, OSError, IndexError):
        return None


def pixel_aspect(capture: cv2.VideoCapture | PyAVCapture) -> Fraction | None:
    """The shape of a capture's pixels, width / height, when they are not square (an anamorphic recording: DVB's
    720x576 at 16:9 is 64/45, HDV's 1440x1080 4/3); None for square ones or where the stream does not say.

    Example:
        >>> pixel_aspect(cv2.VideoCapture()) is None
        True
    """
    numerator, denominator = (int(capture.get(p) or 0) for p in (cv2.CAP_PROP_SAR_NUM, cv2.CAP_PROP_SAR_DEN))
    if numerator <= 0 or denominator <= 0 or numerator == denominator:
        return None
    aspect = Fraction(numerator, denominator)
    return aspect if Fraction(1, 10) <= aspect <= 10 else None  # beyond: a damaged header, not a pixel


def decodable_by_pyav(path: str | Path, options: dict[str, str] | None = None,
                      timeout: tuple[float, float] | None = None, shown: str | None = None) -> PyAVCapture | None:
    """A PyAV reader at the first frame of ``path`` (opened with ``options`` and ``timeout``, as
    :class:`PyAVCapture`), for a file OpenCV opened but decoded no frame of; None when PyAV cannot decode it either.
    ``shown``: how the log names it (a URL, its credentials redacted).

    Example:
        >>> decodable_by_pyav("/nonexistent.mp4") is None
        True
    """
    import av

    try:
        probe = PyAVCapture(path, options, timeout)
    except (av.FFmpegError, OSError, IndexError):  # not a container, or no video stream
        return None
    ok, _ = probe.read()
    probe.release()
    if not ok:
        return None
    log.info("decoding %s with PyAV: OpenCV's FFmpeg has no decoder for its %s video", shown or path, probe.codec)
    return PyAVCapture(path, options, timeout)


def undecodable_reason(path: str | Path, shown: str | None = None) -> str:
    """Why no frame of ``path`` (a file, local or on a web server, that PyAV could not decode either; a URL shown as
    ``shown``, its credentials redacted) decodes, naming its video codec where the container says it, and the fix.

    Example:
        >>> undecodable_reason("/nonexistent.mp4")
        '/nonexistent.mp4 has no decodable frames; give a video file OpenCV/FFmpeg can read'
    """
    import av

    name = shown or str(path)
    try:
        with av.open(str(path), timeout=10.0) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context.codec.canonical_name
            packets = any(packet.size for packet in itertools.islice(container.demux(stream), 100))
    except (av.FFmpegError, OSError, IndexError):
        return f"{name} has no decodable frames; give a video file OpenCV/FFmpeg can read"
    if not packets:
        return f"{name} holds no video frames (its {codec} stream is empty); give a video that has frames"
    return (f"{name} has no decodable frames: the FFmpeg here does not decode its {codec} video; convert it to H.264 "
            f"(ffmpeg -i INPUT -c:v libx264 -c:a copy converted.mp4)")


def video_codec(data: bytes) -> str | None:
    """The codec of the first video stream in ``data`` (the start of a stream: MPEG-TS, Matroska, ...); None when
    FFmpeg cannot tell from it.

    Example:
        >>> video_codec(b"not video") is None
        True
    """
    import io

    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            return str(container.streams.video[0].codec_context.codec.canonical_name)
    except (av.FFmpegError, OSError, IndexError, ValueError):
        return None
