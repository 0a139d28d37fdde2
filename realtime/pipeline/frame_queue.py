"""The queue from the capture threads to the engine: every frame of a file waits its turn; of a live stream, only
the newest waits, in its stream's place, so latency never builds up and one stream never pushes out another's frames.

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
from typing import Any

from realtime.frame import Frame


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
