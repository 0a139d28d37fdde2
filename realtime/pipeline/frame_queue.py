"""From the capture threads to the engine: :func:`live_frames` of each live source (placeholders while it
reconnects) into a :class:`FrameQueue`, where every frame of a file waits its turn; of a live stream only the newest
waits, in its stream's place, so latency never builds up and one stream never pushes out another's frames.

Example:
    >>> import numpy as np
    >>> from realtime.frame import Frame
    >>> frames = FrameQueue(streams=2)
    >>> for index, stream in [(0, 0), (0, 1), (1, 0)]:  # stream 0's second frame before the engine took its first
    ...     _ = frames.put_newest(Frame(index, np.zeros((2, 2, 3), np.uint8), 0.0, 0.0, stream=stream), 0.0)
    >>> [(frame.stream, frame.index) for frame, _ in frames.queue], frames.dropped
    ([(0, 1), (1, 0)], [1, 0])
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from realtime.capture import LiveSource, SourceTimeoutError, redact
from realtime.frame import Frame


def live_frames(source: LiveSource, stop: threading.Event, placeholders: bool) -> Iterator[Frame]:
    """A live source's frames until ``stop``; while it reconnects, with ``placeholders`` (privacy on), its last frame
    again at its frame rate, marked ``placeholder`` (written fully masked).

    Raises:
        SourceTimeoutError: no frame for the source's read timeout while it is not reconnecting.
    """
    source.ensure_started()
    period = 1.0 / (source.fps or 25.0)
    last, waited = None, 0.0
    while not stop.is_set():
        try:
            frame = source.take(period)
        except StopIteration:
            return
        if frame is not None:
            last, waited = frame, 0.0
            yield frame
            continue
        waited += period
        if source.reconnecting and placeholders and last is not None:
            last = replace(last, capture_ts=time.monotonic(), placeholder=True)
            yield last
        elif waited >= source.read_timeout and not source.reconnecting:
            raise SourceTimeoutError(f"{redact(source.uri)}: no frame for {source.read_timeout:g} s")


class FrameQueue(queue.Queue[Any]):
    """A :class:`queue.Queue` of ``(frame, capture_ms)`` (and the pipeline's end and failure markers, which are not
    tuples) with :meth:`put_newest` for live frames.

    Args:
        streams: how many streams put frames in it.
        maxsize: most items waiting (default: one per stream, what live streams need).

    Attributes:
        dropped: of each stream, the live frames replaced by a newer one before the engine took them (stale).
    """

    def __init__(self, streams: int, maxsize: int = 0) -> None:
        super().__init__(maxsize=maxsize or streams)
        self.dropped = [0] * streams

    def put_newest(self, frame: Frame, capture_ms: float, stop: threading.Event | None = None) -> bool:
        """Put a live frame in. It takes the place of its own stream's frame still waiting (counted as dropped),
        keeping that one's turn; one stream's frames never push out another's (before, a 30 fps stream pushed out
        7-13 of a 5 fps one's 51 frames in 10 s: ``benchmarks/streams_share.py``). False when ``stop`` was set
        while it waited for room (the other streams' end or failure markers may fill it)."""
        item = (frame, capture_ms)
        while stop is None or not stop.is_set():
            with self.mutex:
                for k, waiting in enumerate(self.queue):
                    if type(waiting) is tuple and waiting[0].stream == frame.stream:
                        self.queue[k] = item
                        self.dropped[frame.stream] += 1
                        return True
            try:  # a stream's frames come from its own thread only, so none of them came in meanwhile
                self.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
