"""Several live streams through one engine slower than the fastest of them: how many of each stream's frames were
written, of those its source captured. A stale frame waiting for the engine is to be replaced only by its own
stream's newer one, so a slow camera beside a fast one keeps every frame the engine has time for.

The streams are live synthetic patterns (``synthetic:WxH@FPS?live=1``); ``--tiles 3x3`` makes the engine the slow
stage (ten model calls a frame).

Usage:
    python benchmarks/streams_share.py [--seconds 10] [--rates 30,5] [--size 640x360] [--tiles 3x3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engines
from engines.strategies import StrategySettings
from realtime.bench.machine import machine_info
from realtime.capture.live import LiveSource
from realtime.pipeline import Pipeline


def share(rates: list[float], size: str, tiles: tuple[int, int] | None, seconds: float) -> list[dict[str, float]]:
    """Each stream's frames captured by its source and written by the pipeline, over ``seconds``."""
    sources = [f"synthetic:{size}@{rate:g}?live=1" for rate in rates]
    strategy = StrategySettings(name="tiles", tiles=tiles) if tiles else None
    written = [0] * len(rates)
    with engines.load(engines.DEFAULT_MODEL) as engine, \
            Pipeline(sources, engine, "blur", None, strategy=strategy) as pipeline:
        started = time.monotonic()
        for result in pipeline:
            written[result.frame.stream] += 1
            if time.monotonic() - started > seconds:
                break
    captured = [source.stats.captured for source in pipeline.sources if isinstance(source, LiveSource)]
    return [{"fps": rate, "captured": got, "written": count}
            for rate, got, count in zip(rates, captured, written, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="30,5", help="each stream's frame rate, comma-separated")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--tiles", default="3x3", help="RxC tiles (the slow engine), or none")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tiles = None if args.tiles == "none" else tuple(int(n) for n in args.tiles.split("x"))
    rates = [float(rate) for rate in args.rates.split(",")]
    rounds = [share(rates, args.size, tiles, args.seconds) for _ in range(args.rounds)]  # type: ignore[arg-type]
    for number, streams in enumerate(rounds, start=1):
        print(f"round {number}: " + ", ".join(f"{s['fps']:g} fps stream {s['written']}/{s['captured']} written"
                                              for s in streams))
    if args.out:
        report = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                  "size": args.size, "tiles": args.tiles, "seconds": args.seconds, "rounds": rounds}
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
