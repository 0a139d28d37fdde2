"""``-o -``: the masked video on standard output, for a player or ffmpeg to read as it comes.

    realtime-mask run -i 0 -o - | ffplay -
    realtime-mask run -i rtsp://cam/1 -o - | ffmpeg -i - -c copy -f flv rtmp://live.example.com/app/KEY

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

from engines.errors import OutputError
from realtime.outputs.files import H264_OPTIONS, EncodedVideoSink, VideoFormat
from realtime.outputs.screen import StopRequested

log = logging.getLogger(__name__)

STDOUT = "-"  # the output string (and --metadata / --stats value) that means standard output
STDOUT_FORMAT = VideoFormat("libx264", {**H264_OPTIONS, "tune": "zerolatency"},
                            {"flush_packets": "1"}, muxer="mpegts")  # each packet to the pipe as muxed


def silence_stdout() -> None:
    """Point standard output at the null device: its reader went away, and what is still buffered for it (Python's
    last flush at exit) must not fail with a traceback."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)


class StdoutSink(EncodedVideoSink):
    """The masked video as MPEG-TS H.264 on standard output (see the module doc).

    Raises:
        OutputError: standard output is a terminal (video would fill it with bytes).
    """

    def __init__(self, fps: float = 25.0) -> None:
        if os.isatty(1):
            raise OutputError("-o - writes the video to standard output, which is a terminal here; pipe it into a "
                              "player or ffmpeg (-o - | ffplay -) or give a file")
        self.format, self.fps, self.target = STDOUT_FORMAT, fps if 0 < fps <= 1000 else 25.0, "pipe:1"
        self.uri, self.writer, self.frames_written = "stdout://", None, 0
        self.reader_gone = False

    def _on_error(self, exc: OSError) -> None:
        if isinstance(exc, BrokenPipeError):
            self.reader_gone = True
            silence_stdout()
            log.warning("the reader of standard output went away (broken pipe) after %d frames: stopping",
                        self.frames_written)
            raise StopRequested from exc
        raise OutputError(f"cannot write the video to standard output: {exc.strerror}") from exc

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.release()
            except BrokenPipeError:
                silence_stdout()  # gone at the end: what it read is all there is
            except OSError as exc:
                raise OutputError(f"cannot finish the video on standard output: {exc.strerror}") from exc
