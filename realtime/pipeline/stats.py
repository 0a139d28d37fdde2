"""Per-stage latency: samples, percentiles, the end-of-run table and the ``--stats`` JSON.

``--stats`` JSON schema (``"schema": "realtime-masking/stats/1"``)::

    {
      "schema": "realtime-masking/stats/1",
      "source": "file:///clips/a.mp4",        # credentials redacted
      "output": "file:///out.mp4",
      "model": "mediapipe-selfie", "backend": "onnxruntime", "device": "cpu", "precision": "fp32",
      "mode": "blur", "batch": 1,
      "frames": 120,                  # frames written
      "dropped": 0,                   # frames a live source dropped (consumer slower than the source)
      "wall_s": 2.01, "throughput_fps": 59.7,
      "running": false,               # true in a file rewritten while the run goes on (every 10 s), false at its end
      "last_written_at": "2026-11-30T17:59:59.966000Z",  # the newest frame written (UTC; null before the first)
      "reconnecting": 0,              # live sources reconnecting as it was written (down, their frames not coming)
      "recent_fps": 29.9,             # frames written a second since the file was last written (null: the first)
      "updated_at": "2026-11-30T18:00:00.000000Z",  # when it was written (UTC): a stale one is a run that died
      "stages": {                     # one entry per stage, in pipeline order
        "capture":     {"count": 120, "mean_ms": .., "p50_ms": .., "p90_ms": .., "p99_ms": .., "max_ms": ..},
        "preprocess":  {...}, "inference": {...}, "postprocess": {...}, "composite": {...}, "output": {...}
      },
      "end_to_end": {...}             # capture time -> frame written, same fields
      # count, mean and max are exact; percentiles are exact up to 65,536 frames, then from a uniform
      # random sample of that many (memory stays flat on a 24/7 run)
      "counters": {...}               # source counters (disconnects, reconnects, ...) where the source has them
      "streams": [                    # several sources only: each one's part, in the order they were given
        {"source": "rtsp://***@cam1/s", "frames": 300, "dropped": 2, "last_written_at": "...", "reconnecting": false,
         "recent_fps": 15.0, "captured": 302, "disconnects": 0, ...}
      ]
    }

Stage times of a batched engine call are the batch's time divided by its frames. ``capture`` runs
from the frame's capture time (files: the start of its decode; live sources: its arrival) until the
pipeline holds it; every stage lies inside the end-to-end interval, so per frame the stages add up
to at most the end-to-end latency (the rest is time spent waiting in queues).

Example:
    >>> summarise([1.0, 2.0, 3.0, 4.0])["p50_ms"]
    2.5
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import OutputError
from realtime.outputs.pipe import STDOUT, StdoutRelay

log = logging.getLogger(__name__)
SCHEMA = "realtime-masking/stats/1"
STATS_EVERY_S = 10.0  # how often a --stats file is rewritten while the run goes on
STAGES = ("capture", "preprocess", "inference", "postprocess", "composite", "output")


def summarise(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    """count, mean, p50, p90, p99 and max of millisecond samples (linear-interpolated percentiles)."""
    values = np.asarray(samples_ms, np.float64)
    if values.size == 0:
        return {"count": 0, "mean_ms": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"count": int(values.size), "mean_ms": float(values.mean()), "p50_ms": float(p50), "p90_ms": float(p90),
            "p99_ms": float(p99), "max_ms": float(values.max())}


def utc(seconds: float) -> str:
    """Seconds since the epoch in UTC, ISO 8601 to the microsecond.

    Example:
        >>> utc(0.25)
        '1970-01-01T00:00:00.250000Z'
    """
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class LatencySamples:
    """One series of millisecond samples in bounded memory, so a 24/7 run does not grow: count, mean and max are
    exact; the percentiles come from every sample up to ``capacity`` (36 minutes of a 30 fps stream), then from a
    uniform random sample of that many (reservoir sampling; with 65,536 kept, the standard error of p99 is
    sqrt(0.99 * 0.01 / 65536) = 0.04 percentile points).

    Example:
        >>> series = LatencySamples(capacity=100)
        >>> for value in range(1, 1001):
        ...     series.add(float(value))
        >>> summary = series.summary()
        >>> summary["count"], summary["mean_ms"], summary["max_ms"], 400 < summary["p50_ms"] < 600
        (1000, 500.5, 1000.0, True)
    """

    def __init__(self, capacity: int = 1 << 16, seed: int = 0) -> None:
        self.kept = np.empty(capacity, np.float64)  # pages are touched only as samples arrive
        self.count, self.total, self.max = 0, 0.0, 0.0
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        """Record one sample."""
        capacity = len(self.kept)
        if self.count < capacity:
            self.kept[self.count] = value
        else:
            slot = self._random.randrange(self.count + 1)  # keep it with probability capacity / (count + 1)
            if slot < capacity:
                self.kept[slot] = value
        self.count += 1
        self.total += value
        self.max = value if self.count == 1 else max(self.max, value)

    def summary(self) -> dict[str, float]:
        """:func:`summarise`'s fields, with the exact count, mean and max."""
        summary = summarise(self.kept[:min(self.count, len(self.kept))])
        if self.count:
            summary.update(count=self.count, mean_ms=self.total / self.count, max_ms=self.max)
        return summary


class RunStats:
    """Collects each frame's stage times and end-to-end latency (in bounded memory: :class:`LatencySamples`)."""

    def __init__(self, stages: tuple[str, ...] = STAGES) -> None:
        self.stages = stages
        self.samples: dict[str, LatencySamples] = {stage: LatencySamples() for stage in stages}
        self.end_to_end = LatencySamples()
        self.frames = 0
        self.dropped = 0
        self.wall_s = 0.0
        self.counters: dict[str, int] = {}
        self.info: dict[str, Any] = {}
        self.streams: list[dict[str, Any]] = []  # several sources: each one's frames, dropped and counters
        self.running = False  # a snapshot of a run that goes on
        self.reconnecting = 0  # live sources reconnecting
        self.recent_fps: float | None = None  # frames written a second since the last --stats file (StatsFile)
        self.last_written: dict[int, float] = {}  # each stream's newest frame written, seconds since the epoch

    def add(self, timings_ms: dict[str, float], end_to_end_ms: float, stream: int = 0) -> None:
        """Record one written frame (of ``stream``), written now."""
        self.last_written[stream] = time.time()
        for stage, value in timings_ms.items():
            if stage not in self.samples:
                self.samples[stage] = LatencySamples()
            self.samples[stage].add(value)
        self.end_to_end.add(end_to_end_ms)
        self.frames += 1

    def count(self, counters: Any) -> None:
        """Add the int fields of ``counters`` (an object's, or a dict's) to :attr:`counters`, summed over calls: a
        live source's reconnects, drops, ... over every source of the run."""
        items = counters.items() if isinstance(counters, dict) else vars(counters).items()
        for key, value in items:
            if isinstance(value, int) and not isinstance(value, bool):
                self.counters[key] = self.counters.get(key, 0) + value

    def as_dict(self) -> dict[str, Any]:
        """The ``--stats`` JSON document."""
        return {
            "schema": SCHEMA,
            **self.info,
            "frames": self.frames,
            "dropped": self.dropped,
            "wall_s": self.wall_s,
            "throughput_fps": self.frames / self.wall_s if self.wall_s > 0 else 0.0,
            "running": self.running,
            "last_written_at": utc(max(self.last_written.values())) if self.last_written else None,
            "reconnecting": self.reconnecting,
            "recent_fps": self.recent_fps,
            "updated_at": utc(time.time()),
            "stages": {stage: series.summary() for stage, series in self.samples.items()},
            "end_to_end": self.end_to_end.summary(),
            "counters": dict(self.counters),
            **({"streams": self.streams} if self.streams else {}),
        }

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`as_dict` as JSON (``-``: to standard output; a reader gone by then is let be). A file is
        replaced whole (written beside it, then renamed over it): a reader never sees half of one."""
        text = json.dumps(self.as_dict(), indent=1) + "\n"
        if str(path) == STDOUT:  # a reader that does not read is let be once a stop signal comes
            relay = StdoutRelay(1)
            relay.write(text.encode())
            relay.close()
            return
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        try:
            partial.write_text(text)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            if not path.parent.is_dir():  # removed while the run went on
                raise OutputError(f"cannot write {path}: its folder {path.parent} is gone; create it again or write "
                                  "elsewhere") from exc
            raise OutputError(f"cannot write {path}: {exc.strerror}; free space or write elsewhere") from exc

    def table(self) -> str:
        """The end-of-run table: one row per stage, then end-to-end latency and throughput."""
        data = self.as_dict()
        lines = [f"{'stage':<14}{'count':>7}{'mean':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}  (ms)"]
        rows = [*data["stages"].items(), ("end-to-end", data["end_to_end"])]
        for name, s in rows:
            lines.append(f"{name:<14}{s['count']:>7}{s['mean_ms']:>9.2f}{s['p50_ms']:>9.2f}{s['p90_ms']:>9.2f}"
                         f"{s['p99_ms']:>9.2f}{s['max_ms']:>9.2f}")
        lines.append(f"{data['frames']} frames in {data['wall_s']:.2f} s = {data['throughput_fps']:.1f} fps, "
                     f"{data['dropped']} dropped")
        if data["counters"]:
            lines.append("source: " + ", ".join(f"{k} {v}" for k, v in data["counters"].items()))
        for number, stream in enumerate(data.get("streams", [])):
            counts = ", ".join(f"{k} {v}" for k, v in stream.items() if isinstance(v, int) and not isinstance(v, bool)
                               and k not in ("frames", "dropped"))
            lines.append(f"stream {number} {stream['source']}: {stream['frames']} frames, {stream['dropped']} dropped"
                         + (f", {counts}" if counts else ""))
        return "\n".join(lines)


class StatsFile:
    """``--stats``: the document written at the end of the run and, to a file, as it starts and every ``every_s``
    while it goes on (``running``: true), so a 24/7 run's health — frames, drops, reconnects — can be read without
    stopping it. A write that fails while the run goes on is said (once as a warning) and tried again later, the last
    whole file left as it was; the one at the end raises.

    Example:
        >>> import tempfile
        >>> stats_file = StatsFile(os.path.join(tempfile.mkdtemp(), "stats.json"), every_s=10.0)
        >>> stats_file.due()  # the first one at the start, then every 10 s
        True
        >>> stats_file.write(RunStats())
        >>> stats_file.due()
        False
    """

    def __init__(self, path: str | Path, every_s: float | None = None) -> None:
        self.path, self.every_s = path, STATS_EVERY_S if every_s is None else every_s
        self._next = time.monotonic()  # the first as the run starts: a monitor sees it up at once
        self._failed = False  # a write while running failed (said once)
        self._last: tuple[float, list[int]] | None = None  # when the last was written, and its frames (run, streams)

    def due(self) -> bool:
        """Whether a file (not standard output) is due to be rewritten."""
        return str(self.path) != STDOUT and time.monotonic() >= self._next

    def write(self, stats: RunStats) -> None:
        """Write ``stats`` (a snapshot while ``stats.running``, else the end's), with the frames written a second
        since the last (``recent_fps``: a camera delivering 2 fps of its 25 shows at once, where the run's average
        over days would not)."""
        now = time.monotonic()
        self._next = now + self.every_s
        frames = [stats.frames, *(stream["frames"] for stream in stats.streams)]
        if self._last is not None and now > self._last[0] and len(frames) == len(self._last[1]):
            rates = [(count - before) / (now - self._last[0]) for count, before in zip(frames, self._last[1], strict=True)]
            stats.recent_fps = rates[0]
            for stream, rate in zip(stats.streams, rates[1:], strict=True):
                stream["recent_fps"] = rate
        self._last = (now, frames)
        try:
            stats.write_json(self.path)
        except OutputError as exc:
            if not stats.running:
                raise
            (log.info if self._failed else log.warning)("%s (tried again in %g s)", exc, self.every_s)
            self._failed = True
