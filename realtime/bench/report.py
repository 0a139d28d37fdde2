"""Benchmark outputs: the JSON result (schema below), a CSV, PNG plots, a markdown summary, and ``compare``.

Result JSON (``"schema": "realtime-masking/bench/1"``)::

    {
      "schema": "realtime-masking/bench/1",
      "machine": {"date_utc", "cpu", "cores", "gpu"?, "cuda"?, "python", "platform", "packages", "git_commit"},
      "command": "realtime-mask bench ...",
      "workload": {"source", "warmup", "frames"},
      "results": [{
        "config": {"backend", "device", "precision", "model", "mode", "resolution", "batch", "streams"},
        "label": "onnxruntime/cpu/fp32/mediapipe-selfie/blur/native/b1",
        "load_s": 1.2,                          # model load (and export/engine build), timed apart
        "frames": 100, "throughput_fps": 88.0, "dropped": 0,
        "cpu_percent": 180.0, "peak_rss_mb": 610.0, "gpu_mem_mb": null,
        "stages": {"capture": {"count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}, ...},
        "end_to_end": {...},                    # capture time -> frame handed to the sink
        "samples": {"capture": [ms, ...], ..., "end_to_end": [ms, ...]},   # raw, per measured frame
        "timeline": {"capture_ms": [...], "written_ms": [...]}            # per frame, from the first capture
      }, ...],
      "mediapipe": null | {"frames", "resolution", "mask": {"ours", "mediapipe", "ratio_p50"}, "mask_blur": {...}},
      "live": null | {"seconds", "source", "masked", "passthrough", "added_latency_p50_ms", "masked_dropped"}
    }

Example:
    >>> ratio_with_spread([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])["ratio_p50"]
    0.5
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import ConfigError
from realtime.pipeline import STAGES

SCHEMA = "realtime-masking/bench/1"


def write_json(document: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def write_csv(document: dict[str, Any], path: Path) -> Path:
    """One row per configuration: throughput, resources and p50/p90/p99 of every stage and end to end."""
    columns = ["label", "backend", "device", "precision", "model", "mode", "resolution", "batch", "streams", "frames",
               "throughput_fps", "dropped", "cpu_percent", "peak_rss_mb", "gpu_mem_mb", "load_s"]
    parts = [*STAGES, "end_to_end"]
    columns += [f"{part}_{q}" for part in parts for q in ("p50_ms", "p90_ms", "p99_ms")]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in document["results"]:
            row = [r["label"], *(r["config"][k] for k in ("backend", "device", "precision", "model", "mode", "resolution",
                                                           "batch")), r["config"].get("streams", 1),
                   r["frames"], round(r["throughput_fps"], 2), r["dropped"], round(r["cpu_percent"], 1),
                   round(r["peak_rss_mb"], 1), r["gpu_mem_mb"], round(r["load_s"], 3)]
            for part in parts:
                summary = r["end_to_end"] if part == "end_to_end" else r["stages"][part]
                row += [round(summary[q], 3) for q in ("p50_ms", "p90_ms", "p99_ms")]
            writer.writerow(row)
    return path


def markdown_summary(document: dict[str, Any]) -> str:
    """A table ready for the README."""
    machine = document["machine"]
    gpu = f", {machine['gpu']}" if machine.get("gpu") else ""
    lines = [f"Machine: {machine.get('cpu')} ({machine.get('cores')} cores){gpu}, "
             f"{machine.get('date_utc')}, commit {machine.get('git_commit')}. Workload: {document['workload']['source']}, "
             f"{document['workload']['warmup']} warm-up + {document['workload']['frames']} measured frames.", "",
             "| configuration | fps | " + " | ".join(f"{s} p50/p99" for s in STAGES) + " | end-to-end p50/p99 | CPU % | RSS MB |",
             "|---" * (len(STAGES) + 5) + "|"]
    for r in document["results"]:
        cells = [f"{r['stages'][s]['p50_ms']:.2f}/{r['stages'][s]['p99_ms']:.2f}" for s in STAGES]
        e2e = r["end_to_end"]
        lines.append(f"| {r['label']} | {r['throughput_fps']:.1f} | " + " | ".join(cells)
                     + f" | {e2e['p50_ms']:.1f}/{e2e['p99_ms']:.1f} | {r['cpu_percent']:.0f} | {r['peak_rss_mb']:.0f} |")
    if document.get("mediapipe"):
        mp = document["mediapipe"]
        lines += ["", f"MediaPipe side by side ({mp['resolution']}, {mp['frames']} frames, same decoded frames, same run):", "",
                  "| work per frame | ours p50 ms | MediaPipe p50 ms | ratio |", "|---|---|---|---|"]
        for name in ("mask", "mask_blur"):
            row = mp[name]
            lines.append(f"| {name.replace('_', ' + ')} | {row['ours']['p50_ms']:.2f} | {row['mediapipe']['p50_ms']:.2f} | "
                         f"{row['ratio_p50']:.2f}x |")
    if document.get("live"):
        live = document["live"]
        lines += ["", f"Live glass-to-glass over {live['seconds']:g} s ({live['source']}): masked p50 "
                      f"{live['masked']['p50_ms']:.1f} ms, p99 {live['masked']['p99_ms']:.1f} ms; pass-through p50 "
                      f"{live['passthrough']['p50_ms']:.1f} ms; added by masking {live['added_latency_p50_ms']:.1f} ms (p50)."]
    return "\n".join(lines) + "\n"


def write_plots(document: dict[str, Any], folder: Path) -> list[Path]:
    """Stacked per-stage bars per configuration, a latency CDF per stage, and a per-frame timeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = document["results"]
    labels = [r["label"].replace("/", "\n", 3) for r in results]
    paths = []
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(results)), 4.5), dpi=80)
    bottom = np.zeros(len(results))
    for stage in STAGES:
        values = np.array([r["stages"][stage]["mean_ms"] for r in results])
        ax.bar(labels, values, bottom=bottom, label=stage)
        bottom += values
    ax.set_ylabel("mean ms per frame")
    ax.set_title("Per-stage latency")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    paths.append(folder / "stages.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    parts = [*STAGES, "end_to_end"]
    fig, axes = plt.subplots(2, 4, figsize=(14, 6), dpi=70)
    axes.flat[-1].set_visible(False)  # 7 panels on a 2x4 grid
    for ax, part in zip(axes.flat, parts, strict=False):
        for r in results:
            values = np.sort(r["samples"][part])
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=r["label"])
        ax.set_title(part, fontsize=9)
        ax.set_xlabel("ms", fontsize=8)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("Latency CDF per stage")
    fig.tight_layout()
    paths.append(folder / "cdf.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4), dpi=80)
    for r in results:
        ax.plot(r["samples"]["end_to_end"], label=r["label"], linewidth=0.8)
    ax.set_xlabel("measured frame")
    ax.set_ylabel("end-to-end ms")
    ax.set_title("Per-frame timeline")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(folder / "timeline.png")
    fig.savefig(paths[-1])
    plt.close(fig)
    return paths


def load_result(path: str | Path) -> dict[str, Any]:
    """Read a result JSON, refusing other schema versions."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read benchmark result {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from exc
    schema = document.get("schema") if isinstance(document, dict) else None
    if schema != SCHEMA:
        raise ConfigError(f"{path} has schema {schema!r}, this version reads {SCHEMA!r}; rerun the benchmark")
    return document


def ratio_with_spread(a: list[float], b: list[float], resamples: int = 400, seed: int = 0) -> dict[str, float]:
    """B/A ratio of medians, with the 10th-90th percentile spread of that ratio over bootstrap resamples."""
    a_values, b_values = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a_values.size == 0 or b_values.size == 0 or np.median(a_values) == 0:
        return {"ratio_p50": float("nan"), "spread_p10": float("nan"), "spread_p90": float("nan")}
    rng = np.random.default_rng(seed)
    ratios = [np.median(rng.choice(b_values, b_values.size)) / max(np.median(rng.choice(a_values, a_values.size)), 1e-12)
              for _ in range(resamples)]
    return {"ratio_p50": float(np.median(b_values) / np.median(a_values)),
            "spread_p10": float(np.percentile(ratios, 10)), "spread_p90": float(np.percentile(ratios, 90))}


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per configuration present in both results and per stage: B/A ratio of medians with its spread."""
    by_label = {r["label"]: r for r in a["results"]}
    rows = []
    for rb in b["results"]:
        ra = by_label.get(rb["label"])
        if ra is None:
            continue
        for part in [*STAGES, "end_to_end"]:
            rows.append({"label": rb["label"], "stage": part, **ratio_with_spread(ra["samples"][part], rb["samples"][part])})
    if not rows:
        raise ConfigError("the two results share no configuration (compare runs of the same matrix)")
    return rows
