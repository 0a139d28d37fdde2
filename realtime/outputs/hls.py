"""HLS output (``-o /var/www/cam1/live.m3u8``): the masked video as a playlist and H.264 segments of 2 s in MPEG-TS,
written by FFmpeg's HLS muxer (through PyAV) into the playlist's folder, for any web server to serve to browsers
(Safari and Chrome play it natively, Firefox through hls.js), phones, TVs and players: H.264 to many viewers, where
the browser preview sends each one JPEGs.

From a camera or stream the playlist is a window of the last 6 segments (12 s): older segments are deleted as new
ones are listed, each segment carries its wall-clock time (``#EXT-X-PROGRAM-DATE-TIME``), and a viewer joins at the
live edge. From a file it lists every segment (an event that grows, then a video on demand). The playlist is
rewritten beside itself and renamed over, so a web server never serves half of one; when the run ends it says so
(``#EXT-X-ENDLIST``). A run killed outright leaves the segments finished so far, listed.

Example:
    >>> with HlsSink("/tmp/hls-doc/live.m3u8", fps=25) as sink:  # doctest: +SKIP
    ...     sink.write(frame_bgr)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from realtime.outputs.files import H264_OPTIONS, VideoFileSink, VideoFormat

SEGMENT_S = 2  # a key frame starts each: a viewer joins, and a player seeks, at one
LIVE_SEGMENTS = 6  # the live window: a player starts about three segments behind its end
_HLS_FLAGS = "temp_file+independent_segments"  # the playlist renamed over whole; each segment starts at a key frame


def hls_format(folder: Path, stem: str, live: bool) -> VideoFormat:
    """How a playlist named ``stem`` in ``folder`` is written: a live window (``live``) or every segment.

    Example:
        >>> hls_format(Path("/srv/cam1"), "live", live=True).container_options["hls_segment_filename"]
        '/srv/cam1/live-%06d.ts'
    """
    segments = str(folder / f"{stem.replace('%', '%%')}-%06d.ts")
    options = {"hls_time": str(SEGMENT_S), "hls_segment_filename": segments, "hls_segment_type": "mpegts"}
    if live:
        options |= {"hls_list_size": str(LIVE_SEGMENTS), "hls_flags": _HLS_FLAGS + "+delete_segments+program_date_time"}
    else:
        options |= {"hls_list_size": "0", "hls_playlist_type": "event", "hls_flags": _HLS_FLAGS}
    return VideoFormat("libx264", H264_OPTIONS, options, muxer="hls", key_frame_s=SEGMENT_S)


class HlsSink(VideoFileSink):
    """An HLS playlist and its segments (see the module doc); the run's source being live or not (set by the pipeline
    before the first frame) picks the window or every segment.

    Raises:
        OutputError: the playlist's folder cannot be written.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, audio_from: str | Path | None = None) -> None:
        path = Path(path)
        super().__init__(path, fps, video_format=hls_format(path.parent, path.stem, live=False))
        self.uri = f"hls://{path}"
        self.streamed_audio = audio_from  # in the segments as they are written: they are not rewritten at the end

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        if self.writer is None:
            self.format = dataclasses.replace(self.format, container_options=hls_format(
                self.path.parent, self.path.stem, self.live).container_options)
        super().write(image, capture_ts, present_ts)
