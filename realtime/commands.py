"""Handlers of the ``realtime-mask`` subcommands (argument parsing lives in :mod:`realtime.cli`)."""

from __future__ import annotations

import argparse
import shutil
import sys
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

import engines
from engines import zoo
from engines.backends.base import Engine
from engines.errors import ConfigError, SourceError
from engines.spec import ModelSpec
from realtime.capture import open_source, redact, source_files
from realtime.outputs.mask_archive import MaskArchive
from realtime.outputs.paths import check_no_overwrites, check_writable
from realtime.pipeline.signals import SignalHold


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def _spec_overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {
        "color": args.input_color, "layout": args.input_layout, "output": args.output_kind,
        "mean": _floats(args.input_mean, "--input-mean") if args.input_mean else None,
        "std": _floats(args.input_std, "--input-std") if args.input_std else None,
        "classes": tuple(int(v) for v in _floats(args.classes, "--classes")) if args.classes else None,
    }
    if args.input_size:
        try:
            height, width = (int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--input-size takes HxW such as 256x256, got {args.input_size!r}") from None
        overrides["input_hw"] = (height, width)
    return overrides


def load_engine(args: argparse.Namespace) -> Engine:
    """Load the engine the model options of ``args`` describe."""
    resolved = engines.resolve(args.model, args.cache_dir, args.model_sha256)
    overrides = _spec_overrides(args)
    if any(v is not None for v in overrides.values()):
        resolved.spec = ModelSpec.with_overrides(resolved.spec, **overrides)
    return engines.load(resolved, backend=args.backend, device=args.device, precision=args.precision)


def strategy_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~engines.strategies.StrategySettings` the small-people options ask for (None: plain full frame)."""
    from engines.strategies import StrategySettings, parse_tiles

    if not (args.strategy or args.tiles or args.tile_overlap is not None or args.privacy_union):
        return None
    name = args.strategy or ("tiles" if args.tiles else "full")
    return StrategySettings.preset(name, tiles=parse_tiles(args.tiles) if args.tiles else None,
                                   tile_overlap=args.tile_overlap, privacy_union_motion=args.privacy_union == "motion")


def models_command(args: argparse.Namespace) -> int:
    """``realtime-mask models list|fetch|export``."""
    if args.models_command == "list":
        print(f"{'name':28} {'input HxW':10} {'cached':7} source")
        for model in zoo.MODELS.values():
            cached = "yes" if zoo.is_cached(model.name, args.cache_dir) else "no"
            height, width = model.spec.input_hw
            print(f"{model.name:28} {f'{height}x{width}':10} {cached:7} "
                  f"pypi:{zoo.WHEEL_REQUIREMENT}!{model.member} ({zoo.LICENSE})")
        print(f"cache: {zoo.cache_dir(args.cache_dir)}")
        return 0
    if args.models_command == "fetch":
        path = zoo.fetch(args.name, args.cache_dir, force=args.force)
        print(path)
        return 0
    out = check_writable(args.out) if args.out else None
    resolved = engines.resolve(args.name, args.cache_dir)
    path = resolved.onnx_path("fp16" if args.fp16 else "fp32")
    if out is not None:
        if not (out.exists() and out.samefile(path)):  # already there: nothing to copy
            shutil.copyfile(path, out)
        path = out
    print(path)
    return 0


def masks_command(args: argparse.Namespace) -> int:
    """``realtime-mask masks SOURCE --out OUT.npz``: raw per-frame probability, no threshold or smoothing."""
    if args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    strategy_settings = strategy_from_args(args)
    check_no_overwrites([("source", path) for path in source_files(args.source)], [("--out", args.out)])
    archive = MaskArchive(args.out)
    engine = load_engine(args)
    strategy = None
    if strategy_settings is not None:
        from engines.strategies import InferenceStrategy

        strategy = InferenceStrategy(engine, strategy_settings)
    hold = SignalHold()  # Ctrl-C waits until a batch's masks are kept, and until the archive is written
    hold.install()
    try:
        with open_source(args.source) as source, engine:
            total = source.frame_count if args.max_frames is None else min(args.max_frames, source.frame_count or args.max_frames)
            frames = islice(source, args.max_frames) if args.max_frames else iter(source)
            with tqdm(total=total, unit="frame", desc="masks", file=sys.stderr, disable=None) as progress:
                while batch := [f.bgr for f in islice(frames, args.batch)]:
                    merged = [strategy(f) for f in batch] if strategy is not None else engine.predict_batch(batch)
                    with hold:
                        for probability in merged:
                            archive.add(probability)
                    progress.update(len(batch))
    finally:
        try:
            with hold:
                archive.close()
        finally:
            hold.uninstall()
    if not len(archive):
        raise SourceError(f"{redact(args.source)} gave no frame; {archive.path} was not written")
    print(f"wrote {len(archive)} masks to {archive.path}", file=sys.stderr)
    return 0


def _mode_options(args: argparse.Namespace, mode: str) -> dict[str, object]:
    """The options of the chosen mode; an option given for another mode is an error (it would do nothing)."""
    per_mode = {"blur_strength": ("blur", "strength"), "block": ("pixelate", "block"), "opacity": ("overlay", "opacity"),
                "background": ("replace", "background"), "cutout_format": ("cutout", "cutout_format")}
    options: dict[str, object] = {}
    for dest, (owner, name) in per_mode.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if owner != mode:
            raise ConfigError(f"--{dest.replace('_', '-')} is an option of mode {owner}, not {mode}")
        options[name] = value
    if args.color is not None:
        if mode not in ("fill", "overlay"):
            raise ConfigError(f"--color is an option of modes fill and overlay, not {mode}")
        options["color"] = args.color
    return options


def run_command(args: argparse.Namespace) -> int:
    """``realtime-mask run``: the whole pipeline, with a progress line and the per-stage table at the end."""
    from realtime.capture import SourceOptions
    from realtime.compositor import MODES, MaskSettings
    from realtime.outputs.segments import parse_keep
    from realtime.pipeline import Pipeline

    sources = args.source if isinstance(args.source, list) else [args.source] if args.source else []
    outputs = args.output if isinstance(args.output, list) else [args.output] if args.output else []
    if not sources:
        raise ConfigError("--source is required (a file, camera index, rtsp:// URL, synthetic:, sample:carphone)")
    if not outputs:
        raise ConfigError("--output is required (a video file, an image folder, one image, http://127.0.0.1:8080/, "
                          "rtsp://..., display, - or null)")
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    mode = args.mode or "blur"
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    mask = MaskSettings(
        threshold=0.5 if args.threshold is None else args.threshold,
        target=args.target or MODES[mode].default_target,
        dilate_px=args.dilate or 0, feather_px=args.feather or 0,
        ema_alpha=1.0 if args.smooth is None else args.smooth,
    )
    source_options = SourceOptions(
        realtime=args.realtime, tcp=not args.udp,
        open_timeout=10.0 if args.open_timeout is None else args.open_timeout,
        read_timeout=10.0 if args.read_timeout is None else args.read_timeout,
        reconnect=False if args.no_reconnect else None, live=bool(args.live),
    )
    strategy = strategy_from_args(args)
    engine = load_engine(args)
    pipeline = Pipeline(
        sources, engine, mode, outputs if len(outputs) > 1 else outputs[0],
        batch=len(sources) if args.batch is None else args.batch, mask=mask,
        mode_options=_mode_options(args, mode), source_options=source_options, save_masks=args.save_masks,
        metadata=args.metadata, stats=args.stats, max_frames=args.max_frames, strategy=strategy, privacy=args.privacy,
        mask_budget_ms=1000.0 if args.mask_budget is None else args.mask_budget, audio=args.audio == "copy",
        segment_s=args.segment, keep_s=None if args.keep is None else parse_keep(args.keep),
    )
    counts = [source.frame_count for source in pipeline.sources]
    known = [n for n in counts if n is not None]
    total = sum(min(n, args.max_frames or n) for n in known) if len(known) == len(counts) else None
    try:
        with tqdm(total=total, unit="frame", desc="run", file=sys.stderr, disable=None, dynamic_ncols=True) as bar:
            for result in pipeline:
                bar.update(1)
                if total is None and bar.n % 10 == 0:
                    bar.set_postfix_str(f"latency {result.end_to_end_ms:.0f} ms, dropped {pipeline.dropped}")
    finally:
        pipeline.close()
        engine.close()
        if pipeline.stats.frames:  # a run that failed before its first frame ends in its one-line error alone
            print(pipeline.stats.table(), file=sys.stderr)
    return 0


def build_engine_command(args: argparse.Namespace) -> int:
    """``realtime-mask build-engine MODEL [--fp16] [--batch N]``: build the TensorRT plan into the cache."""
    from engines.backends.tensorrt_backend import TensorRTEngine, require_tensorrt

    if args.batch < 1 or args.max_batch < args.batch:
        raise ConfigError(f"need 1 <= --batch <= --max-batch, got {args.batch} and {args.max_batch}")
    require_tensorrt()
    resolved = engines.resolve(args.model, args.cache_dir)
    precision = "fp16" if args.fp16 else "fp32"
    engine = TensorRTEngine(resolved.onnx_path(precision), resolved.spec, resolved.name, args.device, precision,
                            max_batch=args.max_batch, opt_batch=args.batch, cache_dir=resolved.cache / "tensorrt",
                            progress=True)
    print(engine.plan_path)
    return 0


def bench_command(args: argparse.Namespace) -> int:
    """``realtime-mask bench``: run the matrix, or ``bench compare A.json B.json``."""
    from realtime.bench import run_benchmark
    from realtime.bench.matrix import load_matrix_file, matrix_from
    from realtime.bench.report import compare, load_result

    if args.compare:
        if len(args.compare) != 3 or args.compare[0] != "compare":
            raise ConfigError("use `realtime-mask bench compare A.json B.json` (or bench with --source to run)")
        rows = compare(load_result(args.compare[1]), load_result(args.compare[2]))
        print(f"{'configuration':<60} {'stage':<12} {'B/A':>7}  spread (p10-p90)")
        for row in rows:
            print(f"{row['label']:<60} {row['stage']:<12} {row['ratio_p50']:>7.3f}  "
                  f"{row['spread_p10']:.3f}-{row['spread_p90']:.3f}")
        return 0
    values: dict[str, object] = load_matrix_file(args.matrix) if args.matrix else {}
    for key in ("source", "warmup", "frames", "backends", "devices", "precisions", "models", "modes", "resolutions",
                "batches", "streams"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if not 0 <= args.live < float("inf"):
        raise ConfigError(f"--live takes seconds >= 0 (0: no live measurement), got {args.live}")
    matrix = matrix_from(values)
    from realtime.capture import open_source

    open_source(matrix.source).close()  # an unreadable source fails here, before any model loads
    document = run_benchmark(matrix, args.out_dir, "realtime-mask " + " ".join(sys.argv[1:]), args.mediapipe, args.live)
    print((Path(args.out_dir) / "summary.md").read_text())
    print(f"results: {args.out_dir}/bench.json, bench.csv, stages.png, cdf.png, timeline.png, summary.md "
          f"({len(document['results'])} configurations)", file=sys.stderr)
    return 0


def eval_people_command(args: argparse.Namespace) -> int:
    """``realtime-mask eval-people``: every strategy on the synthetic far-people set, side by side."""
    import json

    from engines.strategies import StrategySettings, parse_tiles
    from realtime.bench.people import build_far_people, evaluate

    try:
        low, high = (float(v) for v in args.heights.split("-"))
    except ValueError:
        raise ConfigError(f"--heights takes LO-HI shares of the frame height such as 0.10-0.20, got {args.heights!r}") from None
    if not 0 < low < high < 1:
        raise ConfigError(f"--heights needs 0 < LO < HI < 1, got {args.heights}")
    if args.sequences < 1 or args.frames < 1:
        raise ConfigError(f"--sequences and --frames must be >= 1, got {args.sequences} and {args.frames}")
    shared = Path(args.shared)
    if not (shared / "media").is_dir() or not (shared / "reference").is_dir():
        raise ConfigError(f"{shared} has no media/ and reference/ folders; point --shared at the shared data")
    settings = []
    for entry in (e.strip() for e in args.strategies.split(",") if e.strip()):
        name, _, grid = entry.partition("@")  # "tiles@3x5": a strategy with its own tile grid
        settings.append(StrategySettings.preset(name, tiles=parse_tiles(grid) if grid else None))
    engine = load_engine(args)
    dataset = build_far_people(shared, (low, high), sequences=args.sequences, frames=args.frames)
    rows = [evaluate(engine, dataset, s) for s in settings]
    print(f"people {low:.0%}-{high:.0%} of the frame height, {rows[0]['people']} person-frames")
    print(f"{'strategy':<18}{'recall':>8}{'sil. IoU':>10}{'false fg':>10}{'fg p95':>9}{'ms mean':>9}{'ms p50':>8}"
          f"{'inputs':>8}{'skipped':>9}")
    for r in rows:
        label = r["strategy"] + (f" {r['tiles'][0]}x{r['tiles'][1]}" if "tiles" in r else "")
        print(f"{label:<18}{r['recall']:>8.1%}{r['silhouette_iou']:>10.3f}{r['false_foreground_mean']:>10.2%}"
              f"{r['false_foreground_p95']:>9.2%}{r['ms_per_frame_mean']:>9.1f}{r['ms_per_frame_p50']:>8.1f}"
              f"{r['model_inputs_per_frame']:>8.1f}{r['skipped_frames']:>9}")
    if args.out:
        from realtime.bench.machine import machine_info

        result = {"command": "realtime-mask eval-people " + " ".join(sys.argv[2:]), "machine": machine_info(),
                  "heights": [low, high], "rows": rows}
        Path(check_writable(args.out)).write_text(json.dumps(result, indent=1) + "\n")
    return 0
