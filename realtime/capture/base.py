"""What every frame source is: a context manager that yields :class:`~realtime.frame.Frame`.

Example:
    >>> from realtime.capture import open_source
    >>> with open_source("clip.mp4") as source:  # doctest: +SKIP
    ...     for frame in source:
    ...         print(frame.index, frame.resolution_wh)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from fractions import Fraction

from realtime.frame import Clock, Frame
from realtime.video_decoding import ColorTags


class Source(ABC):
    """A source of frames. Iterate it inside ``with``; iteration ends at end of stream.

    Attributes:
        uri: the normalised ``scheme://location`` it was opened from (credentials redacted).
        fps: nominal frames per second (0.0 when unknown).
        frame_count: frames in the source when known (files), else None.
        live: True for cameras and streams (frames come in real time, their end unknown).
        keeps_every_frame: False where a frame the consumer had no time for is dropped for the newer one
            (cameras, RTSP and MJPEG streams); True for files and for live HLS, whose server paces it.
        dropped: frames skipped because the consumer was slower than the source.
        clock: what places its frames in a video file: ``"source_ts"``, its own timestamps (files, whose frame
            rate may vary, as a phone's does; image folders; live HLS); ``"capture_ts"``, when each arrived
            (cameras, RTSP and MJPEG streams), so that dropped frames and a camera's changing rate keep the
            recording in real time.
        recorded_at: when its ``source_ts`` 0 was, in seconds since the epoch, where the source says (a video file's
            ``creation_time``); None where it does not (live sources: their frames' capture times say it).
        sample_aspect: the shape of its pixels, width / height, where they are not square (an anamorphic 16:9
            recording stored 720x576 or 1440x1080: 64/45, 4/3), which video outputs state so that players show it
            as wide as it is; None: square.
        color: what a video file says of its colours (:class:`~realtime.video_decoding.ColorTags`), which video
            outputs carry on (an HDR clip stays HDR); ``TRUE_COLOR`` for frames that are RGB as they are to be shown
            (images, a webcam's, the test pattern); None where it is not known (network streams, a pipe).
    """

    uri: str = ""
    fps: float = 0.0
    frame_count: int | None = None
    live: bool = False
    keeps_every_frame: bool = True
    dropped: int = 0
    clock: Clock = "source_ts"
    recorded_at: float | None = None
    sample_aspect: Fraction | None = None
    color: ColorTags | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yield frames in order until end of stream."""

    def interrupt(self) -> None:
        """From another thread: wake a reader waiting for the next frame, so a run can stop (a live source, a pipe);
        its frames end there. Files and patterns never wait long: nothing to do."""

    def close(self) -> None:
        """Release the device, file or connection. Safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
