"""The benchmark harness behind ``realtime-mask bench``: a fixed workload swept over a matrix of configurations.

Example:
    >>> from realtime.bench import run_benchmark
    >>> from realtime.bench.matrix import Matrix
    >>> document = run_benchmark(Matrix(source="clip.mp4", modes=("blur", "pixelate")), "results/")  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engines.errors import OutputError
from realtime.bench.machine import machine_info
from realtime.bench.matrix import Matrix
from realtime.bench.report import SCHEMA, markdown_summary, write_csv, write_json, write_plots
from realtime.bench.run import live_latency, mediapipe_side_by_side, run_config


def run_benchmark(matrix: Matrix, out_dir: str | Path, command: str = "", mediapipe: bool = False,
                  live_seconds: float = 0.0) -> dict[str, Any]:
    """Run every configuration, then MediaPipe and live latency when asked; write JSON, CSV, plots and summary.md."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create benchmark folder {folder}: {exc.strerror}") from exc
    document: dict[str, Any] = {
        "schema": SCHEMA, "machine": machine_info(), "command": command,
        "workload": {"source": matrix.source, "warmup": matrix.warmup, "frames": matrix.frames},
        "results": [], "mediapipe": None, "live": None,
    }
    configs = matrix.configs()
    with tqdm(configs, desc="bench", unit="config", file=sys.stderr, disable=None) as progress:
        for config in progress:
            progress.set_postfix_str(config.label)
            document["results"].append(run_config(matrix, config))
    if mediapipe:
        print("MediaPipe side by side...", file=sys.stderr)
        document["mediapipe"] = mediapipe_side_by_side(matrix)
    if live_seconds > 0:
        print(f"live latency for {live_seconds:g} s (and as long again for the pass-through)...", file=sys.stderr)
        document["live"] = live_latency(live_seconds)
    write_json(document, folder / "bench.json")
    write_csv(document, folder / "bench.csv")
    write_plots(document, folder)
    (folder / "summary.md").write_text(markdown_summary(document))
    return document


__all__ = ["Matrix", "run_benchmark"]
