"""What every sink is: a context manager with one main method, ``write(image)``.

Example:
    >>> from realtime.outputs import open_sink
    >>> with open_sink("null") as sink:
    ...     sink.write(np.zeros((2, 2, 3), np.uint8))
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Sink(ABC):
    """Writes masked frames somewhere. Closing finalises the output (playable file after errors/Ctrl-C).

    Attributes:
        uri: where it writes, credentials redacted.
        frames_written: how many frames it has taken.
    """

    uri: str = ""
    frames_written: int = 0
    accepts_alpha: bool = False

    @abstractmethod
    def write(self, image: np.ndarray, capture_ts: float | None = None) -> None:
        """Write one uint8 HxWx3 BGR (or HxWx4 BGRA where ``accepts_alpha``) image.

        ``capture_ts`` (the frame's monotonic capture time) lets live sinks report latency.
        """

    def close(self) -> None:
        """Finalise the output. Safe to call twice."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
