"""The ``realtime-mask`` command.

Every user error ends in one line on stderr and exit code 2; Ctrl-C ends with
exit code 130, SIGTERM with 143 and SIGHUP with 129, after what was processed so far is written.

Example:
    $ realtime-mask models list
    $ realtime-mask masks clip.mp4 --model mediapipe-selfie --out clip.masks.npz
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from engines.errors import ConfigError, MaskingError
from engines.tomlfile import read_toml
from realtime.capture import FORMS_HELP as SOURCE_FORMS
from realtime.commands import (
    bench_command,
    build_engine_command,
    eval_people_command,
    masks_command,
    models_command,
    run_command,
)
from realtime.compositor import MODES
from realtime.outputs import FORMS_HELP as SINK_FORMS


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit code 2."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            hint = "; name them: --source S --output O (or -i S -o O)" if getattr(parsed, "command", "") == "run" else ""
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that pick and describe a model, shared by the commands that run one."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="mediapipe-selfie",
                       help="built-in name, .tflite/.onnx file, .toml model spec, or URL (default: %(default)s)")
    group.add_argument("--model-sha256", help="expected sha256 of the model file (required for a URL)")
    group.add_argument("--backend", choices=["onnxruntime", "torch", "torch-compile", "tensorrt"], default="onnxruntime",
                       help="inference backend; torch-compile compiles the torch engine with torch.compile at load, "
                            "a minute the first time (default: %(default)s)")
    group.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    group.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="(default: %(default)s)")
    group.add_argument("--input-size", metavar="HxW", help="ONNX models: input size when the file does not say")
    group.add_argument("--input-color", choices=["rgb", "bgr"], help="ONNX models: channel order")
    group.add_argument("--input-mean", metavar="M,M,M", help="ONNX models: per-channel mean on [0,1] values")
    group.add_argument("--input-std", metavar="S,S,S", help="ONNX models: per-channel std on [0,1] values")
    group.add_argument("--input-layout", choices=["nchw", "nhwc"], help="ONNX models: input layout")
    group.add_argument("--output-kind", choices=["probability", "logit", "classes"], help="ONNX models: output")
    group.add_argument("--classes", metavar="I,J", help="with --output-kind classes: channels to mask")


def add_strategy_options(parser: argparse.ArgumentParser) -> None:
    """Options for small and distant people (tiles, motion ROIs), shared by run and masks."""
    group = parser.add_argument_group("small people")
    group.add_argument("--strategy", choices=["full", "tiles", "motion-roi", "surveillance"],
                       help="inference strategy (default: full; surveillance = motion-gated tiles, for fixed cameras)")
    group.add_argument("--tiles", metavar="RxC|R", help="tile grid for tiles/surveillance; R alone picks the columns that "
                       "give tiles the model's aspect ratio (default: 2; surveillance 3)")
    group.add_argument("--tile-overlap", type=float, help="overlap of neighbouring tiles, a fraction in [0, 1)")
    group.add_argument("--privacy-union", choices=["motion"], help="also mask moving regions the model does not claim")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to document the CLI)."""
    common = _Parser(add_help=False)
    common.add_argument("--cache-dir", default=argparse.SUPPRESS,
                        help="model cache folder (default: $REALTIME_MASK_CACHE or ~/.cache/realtime-masking)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    parser = _Parser(prog="realtime-mask", description="Real-time video masking with person segmentation.",
                     parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser = functools.partial(commands.add_parser, parents=[common])  # type: ignore[method-assign]

    models = commands.add_parser("models", help="list, fetch and export the built-in models")
    models_sub = models.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    models_sub.add_parser = functools.partial(models_sub.add_parser, parents=[common])  # type: ignore[method-assign]
    models_sub.add_parser("list", help="name, input size, source and whether it is cached")
    fetch = models_sub.add_parser("fetch", help="download a built-in model into the cache")
    fetch.add_argument("name")
    fetch.add_argument("--force", action="store_true", help="download again even when cached")
    export = models_sub.add_parser("export", help="export a model to ONNX (opset 18, dynamic batch)")
    export.add_argument("name", help="built-in name or .tflite file")
    export.add_argument("--fp16", action="store_true", help="FP16 weights and compute, FP32 inputs/outputs")
    export.add_argument("--out", help="copy the ONNX file here (default: print the cached path)")
    models.set_defaults(handler=models_command)

    masks = commands.add_parser("masks", help="per-frame person probability of a video or image folder, as .npz")
    masks.add_argument("source", help="video file, image folder or glob")
    masks.add_argument("-o", "--out", required=True, help="output .npz (masks = uint8 [N,H,W], round(255*p))")
    masks.add_argument("--batch", type=int, default=4, help="frames per engine call (default: %(default)s)")
    masks.add_argument("--max-frames", type=int, help="stop after this many frames")
    add_model_options(masks)
    add_strategy_options(masks)
    masks.set_defaults(handler=masks_command)

    build = commands.add_parser("build-engine", help="build (and cache) a TensorRT engine ahead of time")
    build.add_argument("model", help="built-in name, .tflite/.onnx file or .toml spec")
    build.add_argument("--fp16", action="store_true", help="build from the FP16 ONNX (FP32 inputs/outputs)")
    build.add_argument("--batch", type=int, default=1, help="the batch the engine is tuned for (default: 1)")
    build.add_argument("--max-batch", type=int, default=16, help="largest batch it accepts (default: 16)")
    build.add_argument("--device", default="cuda", help="cuda or cuda:N")
    build.set_defaults(handler=build_engine_command)

    bench = commands.add_parser(
        "bench", help="benchmark a matrix of configurations (or: bench compare A.json B.json)",
        description="Per-stage latency distributions over a matrix of configurations; JSON, CSV, plots, summary.md.",
    )
    bench.add_argument("compare", nargs="*", metavar="compare A.json B.json",
                       help="instead of running: print per-stage ratios (B/A) of two results")
    bench.add_argument("--matrix", help="TOML file with the workload and matrix (flags override it)")
    bench.add_argument("--source", help="clip or synthetic:WxH@FPS")
    bench.add_argument("--warmup", type=int, help="warm-up frames per configuration (default: 10)")
    bench.add_argument("--frames", type=int, help="measured frames per configuration (default: 100)")
    for axis, example in (("backends", "onnxruntime,torch"), ("devices", "cpu,cuda"), ("precisions", "fp32,fp16"),
                          ("models", "mediapipe-selfie"), ("modes", "blur,pixelate"), ("resolutions", "native,1280x720"),
                          ("batches", "1,4"), ("streams", "1,4")):
        bench.add_argument(f"--{axis}", help=f"comma-separated, e.g. {example}"
                           + ("; replace runs with a still background the bench makes" if axis == "modes" else ""))
    bench.add_argument("--out-dir", default="bench-results", help="where results go (default: %(default)s)")
    bench.add_argument("--mediapipe", action="store_true", help="also run MediaPipe's own runtime on the same frames")
    bench.add_argument("--live", type=float, default=0.0, metavar="SECONDS",
                       help="also measure live glass-to-glass latency for this long (and a pass-through)")
    bench.set_defaults(handler=bench_command)

    run = commands.add_parser(
        "run", help="mask a source into an output (capture -> engine -> compositor -> sink)",
        description="Sources: " + SOURCE_FORMS + ". Outputs: " + SINK_FORMS + ".",
    )
    run.add_argument("--config", help="TOML file with any of these options (flags override it)")
    run.add_argument("-i", "--source", action="append",
                     help="what to read: " + SOURCE_FORMS.replace("%", "%%") + "; repeat for several streams at once "
                          "(batched through one engine)")
    run.add_argument("-o", "--output", action="append",
                     help="where to write: " + SINK_FORMS.replace("%", "%%") + "; repeat it for several outputs of one "
                          "source (-o rec.mp4 -o http://127.0.0.1:8080/); with several sources, one per source, and "
                          "each with {stream} in it for every source (masked-{stream}.mp4)")
    run.add_argument("--mode", choices=sorted(MODES), help="masking mode (default: blur)")
    run.add_argument("--target", choices=["person", "background"],
                     help="which side is masked (default: background for replace/cutout, person otherwise)")
    run.add_argument("--batch", type=int, help="frames per engine call (default: the number of sources)")
    run.add_argument("--max-frames", type=int, help="stop after this many frames (of each source)")
    run.add_argument("--save-masks", help=".npz of raw probabilities (the `masks` format; {stream} in it with several "
                     "sources)")
    run.add_argument("--metadata", help=".jsonl with one line per frame (stream, index, timestamps, captured_at in "
                     "UTC, coverage, stage ms); - for standard output")
    run.add_argument("--stats", help="write the per-stage latency table as JSON here; - for standard output")
    run.add_argument("--segment", type=float, metavar="SECONDS",
                     help="cut each video file output, --metadata and --save-masks into files of this many seconds, "
                          "named by their start time (strftime fields in the name, e.g. "
                          "rec/%%Y-%%m-%%d/cam-%%H%%M%%S.mp4, or the time added)")
    run.add_argument("--keep", metavar="DURATION",
                     help="with --segment: delete the outputs' segments older than this (7d, 36h, 90m, or seconds), "
                          "an earlier run's too, as each new one begins")
    run.add_argument("--audio", choices=["drop", "copy"],
                     help="a video file, HLS, - or RTMP output from a video file source: copy its sound in (copy), or "
                          "leave it out (drop: the default, as voices are personal data)")
    mask = run.add_argument_group("mask post-processing")
    mask.add_argument("--threshold", type=float, help="probability that counts as the target (default: 0.5)")
    mask.add_argument("--dilate", type=int, help="grow the masked region by N pixels, a privacy margin (default: 0)")
    mask.add_argument("--feather", type=int, help="soften mask edges over N pixels (default: 0; privacy: outside the mask)")
    mask.add_argument("--smooth", type=float, help="temporal EMA weight of the newest mask in (0, 1] (default: 1 = off; with "
                      "privacy on it holds masks on, never back)")
    mask.add_argument("--privacy", action=argparse.BooleanOptionalAction, default=None,
                      help="fail closed: frames without a trustworthy mask are written fully masked "
                           "(default: on when the mode hides people)")
    mask.add_argument("--mask-budget", type=float, metavar="MS",
                      help="live sources: a mask later than this after capture counts as missing (default: 1000)")
    modes = run.add_argument_group("mode options")
    modes.add_argument("--blur-strength", type=int, help="blur: box radius in px; tent of twice that (default: 15)")
    modes.add_argument("--block", type=int, help="pixelate: block size in px (default: 16)")
    modes.add_argument("--color", help="fill/overlay: colour as B,G,R or #rrggbb (default: black / green)")
    modes.add_argument("--opacity", type=float, help="overlay: tint opacity in (0, 1] (default: 0.5)")
    modes.add_argument("--background", help="replace: background image, or video / animated GIF (plays at its own "
                       "speed, looped)")
    modes.add_argument("--cutout-format", choices=["bgra", "green"], help="cutout: alpha channel or green screen")
    live = run.add_argument_group("sources")
    live.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                      help="pace files at their fps, as a camera (default: on when an output is watched as it comes — "
                      "display, a browser preview, rtsp://, rtmp:// —, else off: as fast as it decodes)")
    live.add_argument("--udp", action="store_true", default=None, help="RTSP over UDP (default: TCP)")
    live.add_argument("--open-timeout", type=float, help="seconds to wait for a stream to open (default: 10)")
    live.add_argument("--read-timeout", type=float, help="seconds without frames before giving up (default: 10)")
    live.add_argument("--no-reconnect", action="store_true", default=None, help="fail instead of reconnecting streams")
    live.add_argument("--live", action="store_true", default=None,
                      help="-i -: a live stream piped in, read as a camera (newest frame kept, stale ones dropped); "
                      "default: every frame, the writer setting the pace")
    add_model_options(run)
    add_strategy_options(run)
    run.set_defaults(handler=run_command)

    people = commands.add_parser("eval-people", help="recall and false foreground of each strategy on far-away people")
    people.add_argument("--shared", default="../shared", help="the shared data folder (media/ and reference/)")
    people.add_argument("--heights", default="0.10-0.20", help="person height as a share of the frame, LO-HI")
    people.add_argument("--strategies", default="full,tiles,motion-roi,surveillance",
                        help="comma-separated strategies; NAME@RxC gives one its own tile grid (e.g. tiles@3x5)")
    people.add_argument("--sequences", type=int, default=4)
    people.add_argument("--frames", type=int, default=30)
    people.add_argument("--out", help="write the results as JSON here")
    add_model_options(people)
    people.set_defaults(handler=eval_people_command)
    return parser


_SHORT_FLAGS = {"-i": "--source", "-o": "--output"}  # run's short flags (-oOUT counts too), for config overrides


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; options missing from the command line come from ``--config FILE.toml`` when given."""
    args = parser.parse_args(argv)
    config_path = getattr(args, "config", None)
    if not config_path:
        return args
    data = read_toml(config_path, "config")
    actions = _command_actions(parser, args.command)
    known = {k for k in vars(args) if k not in ("command", "handler", "config")}
    tokens = [_SHORT_FLAGS.get(token[:2], token) for token in (argv if argv is not None else sys.argv[1:])]
    dests = {option: action.dest for action in actions.values() for option in action.option_strings}
    given = {dests.get(token.split("=", 1)[0]) for token in tokens if token.startswith("--")}  # --no-X sets X too
    for key, value in data.items():
        dest = key.replace("-", "_")
        if dest not in known or dest not in actions:
            raise ConfigError(f"config {config_path}: unknown option {key!r}; options are the flags of `run` "
                              "without the leading dashes, e.g. mode = \"blur\"")
        if dest not in given:
            setattr(args, dest, _config_value(actions[dest], key, value, config_path))
    return args


def _command_actions(parser: argparse.ArgumentParser, command: str) -> dict[str, argparse.Action]:
    """The options of one sub-command, by destination."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a for a in action.choices[command]._actions}
    return {}


def _config_value(action: argparse.Action, key: str, value: Any, path: str) -> Any:
    """A config file's value for ``action``, checked as its flag would be (TOML types: no "yes" for a switch)."""
    where = f"config {path}: {key}"
    if isinstance(action, argparse._AppendAction):  # -i/-o: one value or a list
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in items):
            raise ConfigError(f"{where} must be a string or a list of strings, got {value!r}")
        return [str(v) for v in items]
    if action.nargs == 0:  # a switch: --realtime, --privacy/--no-privacy
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if action.type in (int, float):
        number = isinstance(value, int) or (action.type is float and isinstance(value, float))
        if isinstance(value, bool) or not number:
            raise ConfigError(f"{where} must be {'an integer' if action.type is int else 'a number'}, got {value!r}")
        return action.type(value)
    if action.metavar == "DURATION" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # keep = 604800: seconds, as on the command line; "7d" as a string
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``realtime-mask``; returns the exit code."""
    parser = build_parser()
    try:
        args = parse_with_config(parser, argv)
    except MaskingError as exc:
        print(f"realtime-mask: error: {exc}", file=sys.stderr)
        return 2
    args.cache_dir = getattr(args, "cache_dir", None)
    args.verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="realtime-mask: %(levelname)s: %(message)s")
    previous = _finalise_on_termination()
    try:
        return int(args.handler(args) or 0)
    except MaskingError as exc:
        print(f"realtime-mask: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as stop:
        print(f"realtime-mask: stopped by {signal.Signals(stop.signum).name}; output written up to the last processed "
              "frame", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("realtime-mask: interrupted; output written up to the last processed frame", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, systemd, ``timeout``) or SIGHUP: stop as on Ctrl-C, so files are finalised."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _finalise_on_termination() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while a command runs (their default kills the process at
    once: an MP4 without its index, unplayable). Returns the handlers to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    signals = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]  # no SIGHUP on Windows
    return {signum: signal.signal(signum, stop) for signum in signals}


if __name__ == "__main__":
    sys.exit(main())
