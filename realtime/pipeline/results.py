"""What the pipeline hands out per frame: :class:`Result`, and the ``--metadata`` JSON-lines writer.

Example:
    >>> from realtime.pipeline import Pipeline
    >>> for result in Pipeline("synthetic:320x180@30?frames=3", output="null"):  # doctest: +SKIP
    ...     print(result.frame.stream, result.frame.index, result.coverage, result.end_to_end_ms)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from engines.errors import OutputError
from realtime.frame import Frame
from realtime.outputs.paths import check_writable
from realtime.outputs.pipe import STDOUT, StdoutRelay
from realtime.outputs.screen import StopRequested
from realtime.outputs.segments import Segments
from realtime.pipeline.stats import utc

log = logging.getLogger(__name__)
METADATA_BACKLOG = 64 << 20  # bytes of lines its reader has not taken beyond which a frame waits (hours of lines)


@dataclass
class Result:
    """One processed frame.

    Attributes:
        frame: the input frame (index, timestamps, BGR pixels).
        probability: raw model probability, float32 HxW at the frame's resolution (on the GPU path only
            when ``save_masks`` asks for it; else None).
        alpha: the compositing alpha after post-processing (1 = fully masked); None on the GPU path,
            where it never leaves the device — except a frame written fully masked (privacy): all ones.
        image: the masked output image (BGR, or BGRA for cutout).
        timings_ms: milliseconds per stage for this frame.
        written_ts: monotonic time the frame was handed to the sink.
        fully_masked: why privacy wrote the frame fully masked — ``engine_error``, ``late`` (after the mask budget)
            or ``reconnecting`` (a placeholder while the source reconnects) — or None.
    """

    frame: Frame
    probability: np.ndarray | None
    alpha: np.ndarray | None
    image: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)
    written_ts: float = 0.0
    masked_share: float | None = None  # the GPU path's coverage, counted on the device
    fully_masked: str | None = None

    @property
    def end_to_end_ms(self) -> float:
        """Capture time → frame written, in ms."""
        return (self.written_ts - self.frame.capture_ts) * 1000.0

    @property
    def coverage(self) -> float | None:
        """Share of the frame that is masked (alpha > 0), from the alpha or (GPU path) counted on the device."""
        if self.alpha is None:
            return self.masked_share
        return float(np.count_nonzero(self.alpha)) / self.alpha.size


class MetadataWriter:
    """``--metadata OUT.jsonl``: one JSON line per frame (stream, index, timestamps, coverage, stage ms, and
    ``fully_masked``: why privacy wrote the frame fully masked, or null).

    ``captured_at`` is when the frame was captured, in UTC (ISO 8601, to the microsecond), for lining a line up
    with the world outside the run: ``capture_ts`` on the wall clock as it read at the start of the run (a clock
    set later, by NTP or by hand, does not move it).

    The file is created at the first frame, so a run that fails before it (a source path mistyped, a camera that
    is down) leaves the file of an earlier run as it was. Each line is flushed as written (``tail -f`` follows a
    live run). ``-`` writes the lines to standard output (``| jq``); when its reader goes away the run stops
    (:class:`~realtime.outputs.StopRequested`), as when a display window is closed. With ``segments`` (``--segment``)
    the lines go into a file per segment, cut at the frames where the video is (:mod:`realtime.outputs.segments`).
    """

    def __init__(self, path: str | Path, segments: Segments | None = None) -> None:
        self.to_stdout = str(path) == STDOUT
        self.segments = segments
        self.path = Path(path) if self.to_stdout or segments else check_writable(path)
        self.handle: TextIO | None = None
        self._relay: StdoutRelay | None = None  # with "-": the lines go to standard output through it
        self._wall_minus_monotonic = time.time() - time.monotonic()

    def write(self, result: Result, at: float | None = None) -> None:
        """Write the frame's line (``at``: the frame's time on its stream's clock, where ``--segment`` cuts)."""
        record = {
            "stream": result.frame.stream, "index": result.frame.index,  # seconds, to the microsecond
            "source_ts": round(result.frame.source_ts, 6), "capture_ts": round(result.frame.capture_ts, 6),
            "written_ts": round(result.written_ts, 6),
            "captured_at": utc(result.frame.capture_ts + self._wall_minus_monotonic),
            "coverage": None if result.coverage is None else round(result.coverage, 6),
            "fully_masked": result.fully_masked,  # privacy's reason for writing it fully masked, or null
            "ms": {k: round(v, 4) for k, v in result.timings_ms.items()}, "end_to_end_ms": round(result.end_to_end_ms, 4),
        }
        line = json.dumps(record) + "\n"
        if self.to_stdout:  # never skipped (each line is a frame's record), never holding a stop signal
            self._relay = self._relay or StdoutRelay(1)
            if not self._relay.broken and not self._relay.wait_below(METADATA_BACKLOG):
                raise StopRequested  # a stop signal came while its reader did not read
            if self._relay.broken:
                log.warning("the reader of --metadata's standard output went away (broken pipe): stopping")
                raise StopRequested
            self._relay.write(line.encode())
            return
        if self.segments is not None and (begun := self.segments.next_file(
                result.frame.capture_ts if at is None else at, result.frame.capture_ts, result.frame.stream, 1 << 20)):
            self.close()
            self.path, self.handle = begun, None
        try:
            if self.handle is None:
                self.handle = open(self.path, "w", buffering=1)  # noqa: SIM115 - closed in close(); line-buffered
            self.handle.write(line)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}; free space or write elsewhere") from exc

    def close(self) -> None:
        if self._relay is not None:
            self._relay.close()
        if self.handle is not None and not self.handle.closed:
            try:
                self.handle.close()
            except OSError as exc:
                raise OutputError(f"cannot write {self.path}: {exc.strerror}; free space or write elsewhere") from exc
