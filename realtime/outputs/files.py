"""Video file sinks: .mp4, .m4v, .mov, .ts, .mkv, .avi, .webm (image folders and single images: :mod:`realtime.outputs.images`).

Example:
    >>> with VideoFileSink("/tmp/out.mp4", fps=25) as sink:  # doctest: +SKIP
    ...     sink.write(frame_bgr)
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.errors import InputShapeError, OutputError
from realtime.outputs.base import Sink, square_pixels, to_even_sides
from realtime.outputs.paths import check_writable
from realtime.video_decoding import UNSPECIFIED, ColorTags

log = logging.getLogger(__name__)

BT601_MATRIX = 6  # AVCOL_SPC_SMPTE170M: the matrix of OpenCV's BGR2YUV_I420 and of FFmpeg's default conversion
H264_OPTIONS = {"preset": "veryfast", "crf": "20"}  # 65 fps at 1080p on two cores (benchmarks/video_writers.py)
# Every file is written in pieces of at most a second, each on disk as it closes: a run killed outright (kill -9, the
# OOM killer, a crash) leaves a file that plays up to about its last second or two, where a plain MP4 - its index
# written at the end - would not play at all. Finalised normally, it reads, counts and seeks as a plain one.
_MP4_CRASH_SAFE = {"movflags": "empty_moov+default_base_moof+frag_keyframe", "frag_duration": "1000000",
                   "flush_packets": "1"}
_MKV_CRASH_SAFE = {"cluster_time_limit": "1000", "flush_packets": "1"}


_AVI = {"flush_packets": "1"}  # an AVI's frames are on disk as they come; its index, at the end, is not needed
# VP9 at libvpx's fastest real-time setting, quality by CRF ("b": 0 lets CRF alone set it), rows in parallel, and no
# look-ahead: with libvpx's default (up to 25 frames held back) a run killed after 51 frames of the 10 fps clip left
# 22 playable (tests/realtime/test_pipeline.py's kill test, 2026-11-30), and every frame came out late
VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0", "row-mt": "1", "lag-in-frames": "0"}


@dataclass(frozen=True)
class VideoFormat:
    """How a container is written by PyAV: an FFmpeg encoder, its options and the muxer's."""

    codec: str  # the FFmpeg encoder
    options: dict[str, str] = field(default_factory=dict)  # the encoder's
    container_options: dict[str, str] = field(default_factory=dict)  # the muxer's
    pix_fmt: str = "yuv420p"  # 4:2:0; "yuvj420p": full range, as JPEG takes it
    constant_rate: bool = False  # True: one frame per 1 / fps (AVI), a gap held as the frame before
    muxer: str | None = None  # FFmpeg's muxer; None: by the file's extension
    alpha_pix_fmt: str | None = None  # the pixel format of BGRA frames (cutout); None: the container cannot hold them
    states_aspect: bool = True  # False: the video cannot say its pixels are not square (VP9 in WebM, through PyAV)
    audio_codec: str = "aac"  # what a sound the container cannot hold as it is gets encoded to (--audio copy)
    audio_rate: int | None = None  # that encoder's sample rate; None: the source's
    key_frame_s: float | None = None  # a key frame this often on the video's clock, whatever the real frame rate (a
    # stream's viewer joins, a player seeks, an HLS segment begins, at one); None: the encoder's choice (x264: every 250
    # frames), which a file with an index (MP4, MKV) seeks in all the same


# .mp4/.m4v/.mov: H.264, which browsers and phones play; .ts: H.264 in MPEG-TS, as recorders, broadcast and HLS keep it;
# .mkv: MPEG-4 Part 2, the fast one; .avi: Motion JPEG, each frame a JPEG (quantiser 4: OpenCV's MJPG size or less, up
# to 1.3 dB closer, 1.7-1.8x its speed; benchmarks/video_writers.py); .webm: VP9, with an alpha channel for cutout's
# BGRA frames (transparent video that browsers play)
VIDEO_FORMATS = {
    ".mp4": VideoFormat("libx264", H264_OPTIONS, _MP4_CRASH_SAFE),
    ".m4v": VideoFormat("libx264", H264_OPTIONS, _MP4_CRASH_SAFE, muxer="mp4"),  # Apple's name for an MP4
    ".mov": VideoFormat("libx264", H264_OPTIONS, _MP4_CRASH_SAFE),
    # no index, so nothing to finalise: a player seeks to the key frames it finds
    ".ts": VideoFormat("libx264", H264_OPTIONS, {"flush_packets": "1"}, muxer="mpegts", key_frame_s=2.0),
    ".mkv": VideoFormat("mpeg4", {"qmin": "3", "qmax": "3"}, _MKV_CRASH_SAFE),  # quantiser 3: XVID-sized files
    ".avi": VideoFormat("mjpeg", {"qmin": "4", "qmax": "4"}, _AVI, "yuvj420p", constant_rate=True),
    ".webm": VideoFormat("libvpx-vp9", VP9_OPTIONS, _MKV_CRASH_SAFE, alpha_pix_fmt="yuva420p", states_aspect=False,
                         audio_codec="libopus", audio_rate=48000),  # WebM takes Opus (at 48 kHz) or Vorbis only
}


def to_planes(bgr: np.ndarray, pix_fmt: str) -> np.ndarray:
    """A BGR frame (even sides) as the planes of ``pix_fmt`` (``yuv420p``: limited range, ``yuvj420p``: full), one
    array of 3/2 its height, converted by OpenCV: closer to the source once decoded than FFmpeg's swscale inside PyAV
    (benchmarks/video_writers.py: 43.0 dB at 1080p against 40.7 for H.264).

    Example:
        >>> to_planes(np.full((2, 4, 3), 255, np.uint8), "yuvj420p").tolist()
        [[255, 255, 255, 255], [255, 255, 255, 255], [128, 128, 128, 128]]
    """
    if pix_fmt != "yuvj420p":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).astype(np.uint8, copy=False)
    height, width = bgr.shape[:2]
    luma, red, blue = cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb))
    chroma = [cv2.resize(plane, (width // 2, height // 2), interpolation=cv2.INTER_AREA) for plane in (blue, red)]
    return np.concatenate([plane.ravel() for plane in (luma, *chroma)]).reshape(height * 3 // 2, width)


def tag_colors(context: Any, pix_fmt: str, source: ColorTags) -> None:
    """Tag an encoder's video with the matrix its frames are converted with (BT.601: :func:`to_planes`, FFmpeg's
    default for BGRA) and the source's primaries and transfer, for a source that states its matrix: its decoder
    turned its YUV to BGR by that matrix, so a player must turn ours back by ours. Untagged, an HD video is shown
    as BT.709 — an HD source's greens 27 levels darker in Chromium (test_browser_preview.py) — and an HDR one as
    SDR. A source that states none is written untagged: players then guess alike for both.

    Example:
        >>> import av
        >>> context = av.CodecContext.create("libx264", "w")
        >>> tag_colors(context, "yuv420p", ColorTags(matrix=9, primaries=9, transfer=16))
        >>> int(context.colorspace), int(context.color_primaries), int(context.color_trc), int(context.color_range)
        (6, 9, 16, 1)
    """
    context.colorspace = BT601_MATRIX
    context.color_range = 2 if pix_fmt == "yuvj420p" else 1  # full range (JPEG's) or limited
    if source.primaries != UNSPECIFIED:
        context.color_primaries = source.primaries
    if source.transfer != UNSPECIFIED:
        context.color_trc = source.transfer


class PyAVWriter:
    """A video file through PyAV (FFmpeg's encoders and muxers). Frames have even sides
    (:func:`~realtime.outputs.base.to_even_sides`).

    ``sample_aspect``: the pixels' width / height where they are not square (an anamorphic source's), stated so that
    players show the video as wide as it is. ``color``: the source's colour tags, carried on (:func:`tag_colors`).

    With ``timed``, each frame is written at the time it is given (seconds on any clock, the first frame's at 0: a
    file's own timestamps, a camera's arrival times), not one period after the one before: a container with timestamps (MP4,
    MKV) holds them to the millisecond; a constant-rate one (AVI) holds each frame until the next, and of frames in
    one period keeps the first (``merged`` counts the others). A time that goes back by more than a period (a
    file's timestamps reset half way) goes on from the frame before.

    Example:
        >>> import tempfile, os
        >>> writer = PyAVWriter(os.path.join(tempfile.mkdtemp(), "out.mp4"), 25.0, (64, 48), VIDEO_FORMATS[".mp4"])
        >>> writer.write(np.zeros((48, 64, 3), np.uint8)); writer.release()
        True
        >>> writer.stream.codec_context.name, writer.stream.width, writer.frames
        ('libx264', 64, 1)
    """

    def __init__(self, path: str | Path | Any, fps: float, size_wh: tuple[int, int], video_format: VideoFormat,
                 timed: bool = False, alpha: bool = False, sample_aspect: Fraction | None = None,
                 color: ColorTags | None = None, audio_from: str | Path | None = None, audio_from_s: float = 0.0) -> None:
        import av

        width, height = size_wh
        self.format = video_format
        alpha_pix_fmt = video_format.alpha_pix_fmt
        if alpha and alpha_pix_fmt is None:
            raise OutputError(f"{video_format.codec} video cannot hold an alpha channel; write .webm or an image folder")
        self.pix_fmt: str = alpha_pix_fmt if alpha and alpha_pix_fmt else video_format.pix_fmt
        self.alpha = alpha
        target = str(path) if isinstance(path, str | Path) else path  # or an object with write(): a pipe's relay
        self.container = av.open(target, "w", format=video_format.muxer, options=video_format.container_options)
        # when the recording began (its first frame), in UTC: MP4 keeps it to the second, MKV to the microsecond
        self.container.metadata["creation_time"] = datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
        rate = Fraction(fps).limit_denominator(1001)  # 29.97 as 30000/1001
        stream = self.container.add_stream(video_format.codec, rate=rate, options=video_format.options)
        if not isinstance(stream, av.VideoStream):
            raise OutputError(f"{video_format.codec} is not a video encoder")
        self.stream = stream
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = self.pix_fmt
        if sample_aspect is not None:  # pixels that are not square: in the bitstream (H.264's VUI) and the container
            self.stream.codec_context.sample_aspect_ratio = sample_aspect
        if color is not None and color.stated:
            tag_colors(self.stream.codec_context, self.pix_fmt, color)
        self.time_base = Fraction(1, 1000) if timed and not video_format.constant_rate else 1 / rate
        self.stream.codec_context.time_base = self.time_base
        self.timed = timed
        self.period = max(1, round(1 / (rate * self.time_base)))  # one frame period, in ticks of the time base
        self.video_frame, self.key_frame_type = av.VideoFrame, av.video.frame.PictureType.I
        self.frames = self.merged = 0
        self.last_pts = -self.period
        self.origin: float | None = None  # the clock's time at the video's 0 (moved on when the clock goes back)
        self.next_key_pts = 0  # with key_frame_s: the first frame at or after this is made a key frame
        self.audio = None  # the sound of audio_from, muxed as the frames come (realtime.outputs.audio.AudioFeed)
        if audio_from is not None:
            from realtime.outputs.audio import AudioFeed

            self.audio = AudioFeed(audio_from, self.container, audio_from_s)

    def write(self, bgr: np.ndarray, at_s: float | None = None) -> bool:
        """Encode one frame (BGR, or BGRA with ``alpha``) at ``at_s`` (with ``timed``; None: one period after the
        last). False when a constant-rate file merged it into the frame of its period."""
        pts = self.last_pts + self.period
        if self.timed and at_s is not None:
            self.origin = at_s if self.origin is None else self.origin
            at = round((at_s - self.origin) / self.time_base)
            if at < self.last_pts - self.period:  # back in time: a clock reset, not a frame out of order
                self.origin, at = at_s - float(pts * self.time_base), pts
            if at <= self.last_pts and self.format.constant_rate:
                self.merged += 1
                return False
            pts = max(at, self.last_pts + 1)  # a clock that stood still, or went back: never two frames at one time
        if self.alpha:  # BGRA: FFmpeg's own conversion keeps the alpha plane
            frame = self.video_frame.from_ndarray(bgr, format="bgra").reformat(format=self.pix_fmt)
        else:
            frame = self.video_frame.from_ndarray(to_planes(bgr, self.pix_fmt), format=self.pix_fmt)
        frame.pts = self.last_pts = pts
        if self.format.key_frame_s is not None and pts >= self.next_key_pts:  # by time: a camera's real rate may be
            frame.pict_type = self.key_frame_type  # far from the one it states, so a count of frames would not do
            self.next_key_pts = pts + round(self.format.key_frame_s / self.time_base)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        if self.audio is not None:
            self.audio.up_to(float(pts * self.time_base))
        self.frames += 1
        return True

    @property
    def duration_s(self) -> float:
        """Seconds of video written: up to the last frame's time, and its period."""
        return float((self.last_pts + self.period) * self.time_base)

    def release(self) -> None:
        """Flush the encoder's last frames and write the container's index."""
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            if self.audio is not None:
                self.audio.finish(self.duration_s)
        finally:
            self.container.close()


class EncodedVideoSink(Sink):
    """Frames encoded into one video by :class:`PyAVWriter` (a file, or a pipe): what they share.

    Frames written with ``present_ts`` are placed at those times from the first: a file's own timestamps (a phone's
    varying frame rate kept, and its sound with it), a camera's arrival times (real time kept however many frames
    were dropped and however the camera's rate changed); without it, the nth frame is at n / fps. The writer opens
    on the first frame (its size fixes the video's). Pixels that are not square (``sample_aspect``) are stated, or,
    where the video cannot say so (WebM), the frames are scaled to square ones.
    """

    def __init__(self, target: str | Path | Any, video_format: VideoFormat, fps: float, uri: str) -> None:
        self.target = target  # what PyAVWriter opens: a path, or an object with write()
        self.format, self.uri = video_format, uri
        self.accepts_alpha = video_format.alpha_pix_fmt is not None
        self.fps = fps if 0 < fps <= 1000 else 25.0  # a stream that states none (or nonsense) is written at 25
        self.writer: PyAVWriter | None = None
        self.frames_written = 0
        self.streamed_audio: str | Path | None = None  # a file whose sound is muxed in as the frames are written

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        channels = (3, 4) if self.accepts_alpha else (3,)
        if image.ndim != 3 or image.shape[2] not in channels or image.dtype != np.uint8:
            raise InputShapeError(f"video takes uint8 HxWx3 BGR frames, got {image.shape} {image.dtype}; "
                                  "for BGRA (cutout) write .webm or an image folder, or use --cutout-format green")
        if self.writer is not None and image.shape[2] != (4 if self.writer.alpha else 3):
            raise InputShapeError(f"{self.uri} began with {'BGRA' if self.writer.alpha else 'BGR'} frames, got "
                                  f"{image.shape[2]} channels")
        image = self.fit_to_first_size(image)
        if not self.format.states_aspect:
            image = square_pixels(image, self.sample_aspect)
        self._before_write(image)
        if self.writer is None and (image.shape[0] % 2 or image.shape[1] % 2):
            log.info("%s: frames of odd size %dx%d get a copy of their last column or row: video takes even sides",
                     self.uri, image.shape[1], image.shape[0])
        image = to_even_sides(image)
        try:
            if self.writer is None:  # timed by the first frame's present_ts; without one, frames are 1 / fps apart
                self.writer = PyAVWriter(self.target, self.fps, (image.shape[1], image.shape[0]), self.format,
                                         timed=present_ts is not None, alpha=image.shape[2] == 4,
                                         sample_aspect=self.sample_aspect if self.format.states_aspect else None,
                                         color=self.color, audio_from=self.streamed_audio)
            written = self.writer.write(image, present_ts)
        except OSError as exc:
            self._on_error(exc)
            raise
        self.frames_written += written

    def _before_write(self, image: np.ndarray) -> None:
        """A check before each frame (room on the disk)."""

    def _on_error(self, exc: OSError) -> None:
        """Raise what an error of the writer means here."""


class VideoFileSink(EncodedVideoSink):
    """A video file; the codec follows the extension (:data:`VIDEO_FORMATS`), the fps the source.

    Frames are timed as :class:`EncodedVideoSink` says. ``close()`` finalises the container, so the file plays
    after an error or Ctrl-C with every frame written so far, and copies in the audio of ``audio_from``
    (:func:`realtime.outputs.audio.add_audio`) when given.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, audio_from: str | Path | None = None,
                 video_format: VideoFormat | None = None) -> None:
        self.path = check_writable(path)
        self.audio_from = audio_from  # a video file (or URL) whose audio track close() copies in
        suffix = self.path.suffix.lower()
        if video_format is None and suffix not in VIDEO_FORMATS:
            raise OutputError(f"unknown video type {suffix!r} for {self.path}; use one of {', '.join(VIDEO_FORMATS)}")
        super().__init__(self.path, video_format or VIDEO_FORMATS[suffix], fps, f"file://{self.path}")

    def _on_error(self, exc: OSError) -> None:
        if self.writer is None:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc
        raise OutputError(f"cannot write {self.path}: {exc.strerror}; free space or write elsewhere") from exc

    def _before_write(self, image: np.ndarray) -> None:
        """Stop while the disk still has room to finalise the file: the container's index, written on close, would
        not fit on a full disk."""
        free = shutil.disk_usage(self.path.parent).free
        reserve = (1 << 20) + 2 * image.nbytes + 64 * self.frames_written  # a frame or two, and the index
        if free < reserve and not self.frames_written:
            raise OutputError(f"the disk of {self.path} is full ({free / 1e6:.1f} MB left); free space or write elsewhere")
        if free < reserve:
            raise OutputError(f"the disk of {self.path} is nearly full ({free / 1e6:.1f} MB left): stopped there and "
                              f"finalised the file with its {self.frames_written} frames; free space or write elsewhere")

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.release()
            except OSError as exc:
                raise OutputError(f"cannot finalise {self.path}: {exc.strerror}; free space or write elsewhere") from exc
            if self.audio_from is not None:
                from realtime.outputs.audio import add_audio

                add_audio(self.path, self.audio_from, writer.duration_s)
