"""The benchmark harness: schema, percentiles, stage sums, compare, MediaPipe side by side, bad inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from engines.errors import BackendError
from realtime.bench.report import SCHEMA, compare, ratio_with_spread
from realtime.cli import main
from realtime.pipeline import STAGES, summarise
from tests.common import MEDIA, need_shared
from tests.realtime.test_cli_models import assert_one_line_error, run_cli


def test_percentiles_from_known_samples():
    s = summarise(list(range(1, 101)))
    assert s == {"count": 100, "mean_ms": 50.5, "p50_ms": 50.5, "p90_ms": pytest.approx(90.1), "p99_ms": pytest.approx(99.01),
                 "max_ms": 100.0}
    assert summarise([])["count"] == 0


def test_compare_ratios():
    a = {"results": [{"label": "x", "samples": {p: [1.0, 2.0, 3.0, 4.0] for p in [*STAGES, "end_to_end"]}}]}
    b = {"results": [{"label": "x", "samples": {p: [2.0, 4.0, 6.0, 8.0] for p in [*STAGES, "end_to_end"]}}]}
    rows = compare(a, b)
    assert len(rows) == len(STAGES) + 1
    assert all(row["ratio_p50"] == pytest.approx(2.0) for row in rows)
    spread = ratio_with_spread([1.0] * 50, [3.0] * 50)
    assert spread == {"ratio_p50": 3.0, "spread_p10": 3.0, "spread_p90": 3.0}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, model_cache):
    need_shared()
    out = tmp_path_factory.mktemp("bench")
    code = main(["bench", "--source", str(MEDIA / "one-by-one-person-detection.mp4"), "--backends", "onnxruntime,torch",
                 "--modes", "blur,pixelate", "--resolutions", "native,640x360", "--warmup", "5", "--frames", "40",
                 "--out-dir", str(out)])
    assert code == 0
    return out


def test_bench_writes_every_output(bench_run):
    document = json.loads((bench_run / "bench.json").read_text())
    assert document["schema"] == SCHEMA
    assert {"cpu", "cores", "python", "packages", "git_commit", "date_utc"} <= set(document["machine"])
    assert len(document["results"]) == 8
    for result in document["results"]:
        assert result["frames"] == 40 and result["throughput_fps"] > 0 and result["load_s"] > 0
        assert result["peak_rss_mb"] > 50 and result["cpu_percent"] > 0
        assert list(result["stages"]) == list(STAGES)
        for stage in STAGES:
            assert len(result["samples"][stage]) == 40
            stats = result["stages"][stage]
            assert stats["p50_ms"] == pytest.approx(float(np.percentile(result["samples"][stage], 50)), abs=1e-3)
        stage_sums = np.sum([result["samples"][s] for s in STAGES], axis=0)
        assert (stage_sums <= np.asarray(result["samples"]["end_to_end"]) + 1e-2).all()
    rows = list(csv.DictReader((bench_run / "bench.csv").read_text().splitlines()))
    assert len(rows) == 8 and "inference_p99_ms" in rows[0]
    for name in ("stages.png", "cdf.png", "timeline.png"):
        assert (bench_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| configuration | fps |" in (bench_run / "summary.md").read_text()


def test_compare_command_on_two_runs(bench_run):
    result = run_cli("bench", "compare", str(bench_run / "bench.json"), str(bench_run / "bench.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" 1.000 ") == 8 * (len(STAGES) + 1)


def test_bench_streams_axis_runs_several_sources_at_once(model_cache, tmp_path):
    """--streams 1,3: the workload three times at once through one engine (a batch of 3: a frame of each); warm-up and
    measured frames count per stream, throughput is the total."""
    need_shared()
    assert main(["bench", "--source", str(MEDIA / "carphone_pristine.mp4"), "--streams", "1,3", "--batches", "3",
                 "--warmup", "2", "--frames", "10", "--out-dir", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "bench.json").read_text())
    one, three = document["results"]
    assert one["label"].endswith("/b3") and three["label"].endswith("/b3/s3")
    assert one["frames"] == 10 and three["frames"] == 30 and len(three["samples"]["inference"]) == 30
    assert three["config"]["streams"] == 3 and three["throughput_fps"] > 0
    rows = list(csv.DictReader((tmp_path / "bench.csv").read_text().splitlines()))
    assert [row["streams"] for row in rows] == ["1", "3"]


def test_mediapipe_side_by_side_on_the_same_frames(model_cache, tmp_path):
    need_shared()
    from realtime.bench.matrix import Matrix
    from realtime.bench.run import mediapipe_side_by_side

    try:
        result = mediapipe_side_by_side(Matrix(source=str(MEDIA / "head-pose-face-detection-female-and-male.gif"),
                                               warmup=3, frames=20))
    except BackendError as exc:  # a machine without PyPI cannot make MediaPipe's venv
        if "cannot install" in str(exc):
            pytest.skip(str(exc))
        raise
    assert result["frames"] == 20 and result["resolution"] == "480x270"
    for name in ("mask", "mask_blur"):
        assert result[name]["ours"]["count"] == result[name]["mediapipe"]["count"] == 20
        assert result[name]["ratio_p50"] > 0


@pytest.mark.parametrize("args,fragments", [
    (["--source", "synthetic:", "--backends", "tflite"], ["unknown backend 'tflite' in the benchmark matrix"]),
    (["--source", "{d}/none.mp4"], ["none.mp4 does not exist"]),
    (["--source", "synthetic:", "--resolutions", "big"], ["must be WxH"]),
    (["--source", "synthetic:", "--streams", "0"], ["stream counts must be >= 1"]),
    (["compare", "{d}/old.json", "{d}/old.json"], ["schema 'realtime-masking/bench/0'"]),
    (["compare", "{d}/old.json"], ["bench compare A.json B.json"]),
    (["--source", "synthetic:", "--live", "nan"], ["--live takes seconds >= 0"]),
    (["--matrix", "{d}/words.toml"], ["frames in the benchmark matrix must be an integer, got 'many'"]),
    (["--matrix", "{d}/devices.toml"], ["devices in the benchmark matrix must be strings, got [0]"]),
    (["--matrix", "{d}/batches.toml"], ["batch sizes must be integers, got [1, 2.5]"]),
])
def test_bench_bad_inputs(tmp_path, args, fragments):
    (tmp_path / "old.json").write_text(json.dumps({"schema": "realtime-masking/bench/0", "results": []}))
    (tmp_path / "words.toml").write_text('source = "synthetic:"\nframes = "many"\n')
    (tmp_path / "devices.toml").write_text('source = "synthetic:"\ndevices = [0]\n')
    (tmp_path / "batches.toml").write_text('source = "synthetic:"\nbatches = [1, 2.5]\n')
    assert_one_line_error(run_cli("bench", *[a.format(d=tmp_path) for a in args]), *fragments)


def test_bench_measures_every_mode_replace_included(model_cache, tmp_path):
    """--modes replace,cutout: replace is measured with a still background the bench makes (before: "mode replace
    needs a background: --background", an option bench does not have)."""
    need_shared()
    assert main(["bench", "--source", str(MEDIA / "carphone_pristine.mp4"), "--modes", "replace,cutout,mask",
                 "--warmup", "2", "--frames", "5", "--out-dir", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "bench.json").read_text())
    assert [r["config"]["mode"] for r in document["results"]] == ["replace", "cutout", "mask"]
    assert all(r["frames"] == 5 and r["stages"]["composite"]["mean_ms"] > 0 for r in document["results"])
