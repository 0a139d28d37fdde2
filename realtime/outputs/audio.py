"""The source's sound in a masked video file (``run --audio copy``), through PyAV (FFmpeg's libraries).

OpenCV writes video only. When asked, a video-file output gets the first audio track of its source file
copied in after the video is finalised: packets copied as they are (no re-encoding; a codec the container
cannot hold, such as a camera's G.711 in an MP4, is encoded to AAC, or for WebM to Opus), cut to the video's length (a run
stopped early, ``--max-frames``), aligned so that the source's first video frame is time 0.
The file is rewritten beside the video and renamed over it, so the video-only file stays if this fails.

Audio is not copied by default: voices are personal data too, and a privacy product keeps what it was not
asked to keep out of its outputs; a run whose source has sound says so once.

Example:
    >>> audio_codec("/nonexistent.mp4") is None
    True
"""

from __future__ import annotations

import errno
import heapq
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from engines.errors import OutputError


def audio_codec(source: str | Path) -> str | None:
    """The codec of the first audio track of a video file or URL (``"aac"``), or None: none, or unreadable."""
    try:
        import av
    except ImportError:  # PyAV is a dependency; without it there is nothing to tell
        return None
    try:
        with av.open(str(source), timeout=10.0) as container:
            return str(container.streams.audio[0].codec_context.name) if container.streams.audio else None
    except (av.FFmpegError, OSError):
        return None


def _copied(container: Any, stream: Any, start_s: float, end_s: float, output: Any,
            at_s: float = 0.0) -> Iterator[tuple[float, Any]]:
    """The stream's packets from ``start_s`` to ``end_s`` (source seconds), re-timed to start at ``at_s``, as
    (time, packet) for merging with another stream's."""
    shift = round((start_s - at_s) / stream.time_base)
    for packet in container.demux(stream):
        if packet.pts is None or packet.dts is None:  # a flush packet
            continue
        at = float(packet.pts * stream.time_base)
        if at < start_s:
            continue
        if at >= end_s:
            return
        packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
        packet.stream = output
        yield at - start_s + at_s, packet


def _encoded(container: Any, stream: Any, start_s: float, end_s: float, output: Any,
             at_s: float = 0.0) -> Iterator[tuple[float, Any]]:
    """The stream decoded from ``start_s`` to ``end_s`` and encoded again by ``output``'s encoder (AAC at the source's
    rate, PyAV converting the samples to what it takes; Opus at 48 kHz, resampled here), starting at ``at_s``."""
    import av

    def encoded(frame: Any) -> Iterator[tuple[float, Any]]:
        for packet in output.encode(frame):
            yield float(packet.pts * packet.time_base) if packet.pts is not None else at_s, packet

    rate = output.codec_context.sample_rate
    resampler = av.AudioResampler(rate=rate) if rate != stream.codec_context.sample_rate else None
    samples = round(at_s * rate)  # the output's clock, in samples: no gap in the sound where the source had one

    def timed(frames: list[Any]) -> Iterator[tuple[float, Any]]:
        nonlocal samples
        for frame in frames:
            frame.pts, frame.time_base = samples, Fraction(1, rate)
            samples += frame.samples
            yield from encoded(frame)

    for frame in container.decode(stream):
        at = float(frame.pts * stream.time_base) if frame.pts is not None else start_s
        if at < start_s:
            continue
        if at >= end_s:
            break
        yield from timed(resampler.resample(frame) if resampler is not None else [frame])
    if resampler is not None:
        yield from timed(resampler.resample(None))
    yield from encoded(None)


def _first_frame_s(video: Path) -> float:
    """When the first frame of a video file is shown, in seconds, as a player decodes it."""
    import av

    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            return float(frame.time or 0.0)
    return 0.0


def _remux(video: Path, source: str | Path, seconds: float, partial: Path, encode: bool) -> bool:
    import av

    with av.open(str(source), timeout=10.0) as original, av.open(str(video)) as masked, \
            av.open(str(partial), "w") as out:
        if not original.streams.audio:
            return False
        audio_in, video_in = original.streams.audio[0], masked.streams.video[0]
        first = original.streams.video[0] if original.streams.video else None
        start_s = 0.0  # the source's first video frame is time 0 of the masked video
        if first is not None and first.start_time is not None and first.time_base is not None:
            start_s = float(first.start_time * first.time_base)
        video_out = out.add_stream_from_template(video_in)
        if "creation_time" in masked.metadata:  # when the recording began
            out.metadata["creation_time"] = masked.metadata["creation_time"]
        at_s = _first_frame_s(video)  # the sound starts with the first frame: H.264 in an MP4 shows it after its
        # reorder delay (a frame or two)
        if encode:  # the container's own choice: AAC, or Opus for WebM (realtime.outputs.files.VIDEO_FORMATS)
            from realtime.outputs.files import VIDEO_FORMATS

            video_format = VIDEO_FORMATS[partial.suffix.lower()]
            audio_out = out.add_stream(video_format.audio_codec,
                                       rate=video_format.audio_rate or audio_in.codec_context.sample_rate)
            audio = _encoded(original, audio_in, start_s, start_s + seconds, audio_out, at_s)
        else:
            audio = _copied(original, audio_in, start_s, start_s + seconds, out.add_stream_from_template(audio_in),
                            at_s)
        for _, packet in heapq.merge(_copied(masked, video_in, 0.0, float("inf"), video_out), audio,
                                     key=lambda item: item[0]):
            out.mux(packet)
    return True


def add_audio(video: str | Path, source: str | Path, seconds: float) -> None:
    """Copy the first audio track of ``source`` into ``video`` (``seconds`` of it, from its first frame): its packets
    as they are, or, for a codec the container cannot hold (G.711 in an MP4, AAC in WebM), encoded to AAC (WebM: Opus).

    Raises:
        OutputError: the audio could not be copied (the video is left as it was, without sound).

    Example:
        >>> add_audio("masked.mp4", "clip.mp4", seconds=4.0)  # doctest: +SKIP
    """
    import av

    video = Path(video)
    partial = video.with_name(f".{video.stem}.audio{video.suffix}")  # the suffix picks the container
    try:
        try:
            added = _remux(video, source, seconds, partial, encode=False)
        except (av.FFmpegError, ValueError):  # a codec this container does not take
            added = _remux(video, source, seconds, partial, encode=True)
        if added:
            partial.replace(video)
    except (av.FFmpegError, OSError, ValueError) as exc:
        full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        raise OutputError(f"could not copy the audio of {source} into {video} ({exc}); the video is written without "
                          f"it{': free space, or write elsewhere' if full else ''}") from exc
    finally:
        partial.unlink(missing_ok=True)


STREAMED_AS_IS = ("aac", "mp3")  # what MPEG-TS (HLS's segments) carries as it is; the rest is encoded to AAC


class AudioFeed:
    """The first audio track of a video file, muxed into a video while it is written (an HLS output's segments, which
    cannot be rewritten afterwards as a file is by :func:`add_audio`): AAC and MP3 as they are, other codecs (a
    camera's G.711) encoded to AAC, the source's first video frame at time 0, as the video's is.

    Call :meth:`up_to` after each video frame, with its time; :meth:`finish` with the video's length. ``from_s``: the
    video starts that far into the source (a stream published again after its connection was lost).

    Raises:
        OutputError: the source has no sound, or cannot be read.
    """

    def __init__(self, source: str | Path, output: Any, from_s: float = 0.0) -> None:
        import av

        try:
            self._source = av.open(str(source), timeout=10.0)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot read the sound of {source}: {exc}") from exc
        if not self._source.streams.audio:
            self._source.close()
            raise OutputError(f"{source} has no sound to copy")
        audio_in = self._source.streams.audio[0]
        first = self._source.streams.video[0] if self._source.streams.video else None
        start_s = from_s + (float(first.start_time * first.time_base) if first is not None and
                            first.start_time is not None and first.time_base is not None else 0.0)
        if from_s > 0 and audio_in.time_base:  # to the sound's packet before it: those before start_s are skipped
            self._source.seek(int(start_s / audio_in.time_base), stream=audio_in, backward=True)
        if audio_in.codec_context.name in STREAMED_AS_IS:
            self.stream = output.add_stream_from_template(audio_in)
            self._packets = _copied(self._source, audio_in, start_s, float("inf"), self.stream)
        else:
            self.stream = output.add_stream("aac", rate=audio_in.codec_context.sample_rate)
            self._packets = _encoded(self._source, audio_in, start_s, float("inf"), self.stream)
        self._output = output
        self._next: tuple[float, Any] | None = next(self._packets, None)

    def up_to(self, at_s: float, before: bool = False) -> None:
        """Mux the sound up to ``at_s`` (seconds from the first video frame; ``before``: what starts before it)."""
        while self._next is not None and (self._next[0] < at_s if before else self._next[0] <= at_s):
            self._output.mux(self._next[1])
            self._next = next(self._packets, None)

    def finish(self, end_s: float) -> None:
        """Mux the sound up to the video's end, ``end_s``, and close the source."""
        try:
            self.up_to(end_s, before=True)
        finally:
            self._source.close()
