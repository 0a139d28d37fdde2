"""Several outputs of one stream at once: a recording and a live view (``-o rec.mp4 -o http://127.0.0.1:8080/``).

Example:
    >>> from realtime.outputs import open_sink
    >>> with TeeSink([open_sink("null"), open_sink("null")]) as both:
    ...     both.write(np.zeros((2, 2, 3), np.uint8))
    >>> both.uri, both.frames_written
    ('null:// + null://', 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from realtime.outputs.base import Sink


class TeeSink(Sink):
    """Writes each frame to every one of ``sinks``, in order; closing closes them all (each, whatever the others do).

    A sink that fails (a full disk) or asks to stop (a closed window) stops the run; the others are finalised
    with every frame written so far, as any output is.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.uri = " + ".join(sink.uri for sink in self.sinks)
        self.accepts_alpha = all(sink.accepts_alpha for sink in self.sinks)

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        for sink in self.sinks:
            sink.write(image, capture_ts=capture_ts, present_ts=present_ts)
        self.frames_written += 1

    @property
    def frames_letterboxed(self) -> int:
        return max(sink.frames_letterboxed for sink in self.sinks)

    def close(self) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
