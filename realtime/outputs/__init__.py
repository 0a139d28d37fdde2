"""Sinks. One string picks the kind: :func:`open_sink`.

====================================================  ==========================================
``out.mp4`` (.m4v .mov .ts .mkv .avi .webm)             video file (codec by extension, source fps)
``frames/``, ``frames/%05d.png``                        image folder (lossless PNG per frame; photos: their names)
``masked.jpg``, ``masked.png`` (.webp .bmp .tif)        one image (a photo's source; a stream: ``--max-frames 1``)
``http://127.0.0.1:8080/[PATH/]``                        browser preview: MJPEG + a page with fps/latency
``rtsp://127.0.0.1:8554/masked`` (``rtsp://@:8554/x``)  H.264 RTSP stream served by a supervised GStreamer process
``display``, ``display://TITLE``                        an OpenCV window (q / Esc quits); one per title
``rtmp://server/app/KEY`` (``rtmps://``)               published to an RTMP server (a streaming service's ingest)
``/var/www/cam1/live.m3u8``                              HLS: a playlist and 2 s H.264 segments, for a web server
``-``                                                   standard output: MPEG-TS H.264 (``| ffplay -``)
``null``                                                nothing (benchmarks)
====================================================  ==========================================

Example:
    >>> normalise_sink("out.mp4"), normalise_sink("frames/"), normalise_sink("photo.jpg"), normalise_sink("-")
    ('file://out.mp4', 'images://frames/', 'image://photo.jpg', 'stdout://')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engines.errors import OutputError
from realtime.outputs.base import Sink, split_viewer
from realtime.outputs.files import VIDEO_FORMATS, VideoFileSink
from realtime.outputs.images import IMAGE_FORMATS, ImageFileSink, ImageFolderSink
from realtime.outputs.screen import DisplaySink, NullSink, StopRequested

FORMS_HELP = (f"a video file ({' '.join(VIDEO_FORMATS)}), an image folder (frames/ or frames/%05d.png), "
              f"one image ({' '.join(IMAGE_FORMATS)}), an HLS playlist (live.m3u8), "
              "http://127.0.0.1:8080/ (browser preview), rtsp://127.0.0.1:8554/masked, rtmp://server/app/KEY, display, "
              "- (standard output, for a player or ffmpeg), null")

@dataclass(frozen=True)
class SinkOptions:
    """What some kinds of output use (each kind takes the ones that apply to it).

    Args:
        fps: the source's frame rate (video files and streams).
        audio_from: a video file whose sound a video file output copies in when it is finalised.
        names: the file names of the source's images, which an image folder output gives its images.
        segment_s: a video file output is cut into files of that many seconds (:mod:`realtime.outputs.segments`).
        keep_s: and its segments whose span is further back than that many seconds are deleted.
        segment_origin: seconds since the epoch at the frames' own clock's 0, to name segments by (a file source:
            when it was recorded); None: by when their first frames were captured.
    """

    fps: float = 25.0
    audio_from: str | Path | None = None
    names: list[str] | None = None
    segment_s: float | None = None
    keep_s: float | None = None
    segment_origin: float | None = None


def _video_file(location: str, o: SinkOptions) -> Sink:
    if o.segment_s is None:
        return VideoFileSink(location, o.fps, o.audio_from)
    if o.audio_from is not None:
        raise OutputError("--audio copy cannot go with --segment (the sound is copied in at the end of one file)")
    from realtime.outputs.segments import SegmentedVideoSink

    sink = SegmentedVideoSink(location, o.fps, o.segment_s, o.keep_s)
    sink.segments.origins = [o.segment_origin]
    return sink


SINKS: dict[str, Callable[[str, SinkOptions], Sink]] = {
    "file": _video_file,
    "images": lambda location, o: ImageFolderSink(location, o.names),
    "image": lambda location, o: ImageFileSink(location),
    "http": lambda location, o: _http_preview(location),
    "rtsp": lambda location, o: _rtsp(location, o.fps),
    "rtmp": lambda location, o: _rtmp(f"rtmp://{location}", o.fps, o.audio_from),
    "rtmps": lambda location, o: _rtmp(f"rtmps://{location}", o.fps, o.audio_from),
    "display": lambda location, o: DisplaySink(location or "realtime-mask"),
    "null": lambda location, o: NullSink(),
    "stdout": lambda location, o: _stdout(o.fps, o.audio_from),
    "hls": lambda location, o: _hls(location, o.fps, o.audio_from),
}
RELAYED = ("srt", "rist")  # stream protocols the FFmpeg inside PyAV's wheels cannot write: relayed from -o -
SOUND_SCHEMES = ("file", "hls", "stdout", "rtmp", "rtmps")  # the outputs that carry the source's sound (--audio copy)


def _http_preview(location: str) -> Sink:
    from realtime.outputs.http_preview import HttpPreviewSink

    address, _, path = location.partition("/")
    viewer, address = split_viewer(address)
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise OutputError(f"preview output needs http://HOST:PORT/[PATH/] with a port 0..65535 (0: any free one), "
                          f"got http://{'***@' if viewer else ''}{address}/{path}")
    return HttpPreviewSink(host or "127.0.0.1", int(port), path=path, viewer=viewer)


def _hls(location: str, fps: float, audio_from: str | Path | None) -> Sink:
    from realtime.outputs.hls import HlsSink

    return HlsSink(location, fps, audio_from)


def _stdout(fps: float, audio_from: str | Path | None) -> Sink:
    from realtime.outputs.pipe import StdoutSink

    return StdoutSink(fps, audio_from)


def _rtsp(location: str, fps: float) -> Sink:
    from realtime.outputs.rtsp import RtspSink

    return RtspSink(location, fps)


def _rtmp(url: str, fps: float, audio_from: str | Path | None) -> Sink:
    from realtime.outputs.rtmp import RtmpSink

    return RtmpSink(url, fps, audio_from)


def normalise_sink(text: str) -> str:
    """Turn a user's output string into ``scheme://location``.

    Raises:
        OutputError: an empty string, or one that names no kind of output.
    """
    text = text.strip()
    if not text:  # not PNGs into the current folder: an unset variable ("-o $OUT") must not pick an output
        raise OutputError(f"the output is empty; give {FORMS_HELP}")
    if text in ("display", "null"):
        return f"{text}://"
    if text == "-":
        return "stdout://"
    if "://" in text:
        return text
    suffix = Path(text).suffix.lower()
    if suffix in VIDEO_FORMATS:
        return f"file://{text}"
    if suffix == ".m3u8":
        return f"hls://{text}"
    if suffix in IMAGE_FORMATS and "%" not in text and not text.endswith("/") and not Path(text).is_dir():
        return f"image://{text}"
    if "%" in text or text.endswith("/") or not suffix or Path(text).is_dir():
        return f"images://{text}"
    raise OutputError(f"cannot tell what output {text!r} is (suffix {suffix!r}); give {FORMS_HELP}")


def open_sink(text: str, options: SinkOptions | None = None) -> Sink:
    """Open a sink from one string, with the settings of :class:`SinkOptions` that its kind uses.

    Raises:
        OutputError: unknown form, a path that cannot be written, sound for an output that cannot hold it.
    """
    o = options or SinkOptions()
    uri = normalise_sink(text)
    scheme, location = uri.split("://", 1)
    if scheme in RELAYED:
        raise OutputError(f"{scheme}:// is not written directly (this FFmpeg has no {scheme.upper()}); relay it from "
                          f"standard output: realtime-mask run ... -o - | ffmpeg -i - -c copy -f mpegts "
                          f"'{text.partition('?')[0]}{'?...' if '?' in text else ''}'")
    if scheme not in SINKS:
        raise OutputError(f"unknown output scheme '{scheme}://'; accepted: {FORMS_HELP}")
    if o.audio_from is not None and scheme not in SOUND_SCHEMES:
        raise OutputError(f"{text} cannot hold sound; --audio copy writes it into a video file output")
    return SINKS[scheme](location, o)


WATCHED = {"display": "the window", "http": "the browser preview", "rtsp": "the RTSP stream",
           "rtmp": "the RTMP stream", "rtmps": "the RTMP stream"}  # outputs a person watches as the frames come


def watched_as(output: object) -> str | None:
    """What an output someone watches as it comes is — a window, a browser preview, an RTSP or RTMP stream —, which
    a video file should reach at its own pace, not as fast as it decodes; None for the rest (a file, ``-``: a player
    or ffmpeg reading it sets the pace itself).

    Example:
        >>> watched_as("http://127.0.0.1:8080/"), watched_as("display"), watched_as("out.mp4"), watched_as("-")
        ('the browser preview', 'the window', None, None)
    """
    text = output if isinstance(output, str) else getattr(output, "uri", "")
    try:
        return WATCHED.get(normalise_sink(text).split("://", 1)[0])
    except OutputError:
        return None


def sink_path(output: object) -> Path | None:
    """What an output string writes on disk: the video file, or the folder of an image sequence; None for the rest.

    Example:
        >>> sink_path("out.mp4"), sink_path("frames/%05d.png"), sink_path("rtsp://127.0.0.1:8554/masked")
        (PosixPath('out.mp4'), PosixPath('frames'), None)
    """
    if not isinstance(output, str):
        return None
    scheme, location = normalise_sink(output).split("://", 1)
    if scheme in ("file", "image", "hls"):
        return Path(location)
    if scheme == "images":
        return Path(location).parent if "%" in location else Path(location)
    return None


__all__ = [
    "FORMS_HELP",
    "SINKS",
    "ImageFileSink",
    "ImageFolderSink",
    "NullSink",
    "Sink",
    "SinkOptions",
    "StopRequested",
    "VideoFileSink",
    "normalise_sink",
    "open_sink",
    "sink_path",
    "watched_as",
]
