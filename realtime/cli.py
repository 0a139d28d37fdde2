"""The ``realtime-mask`` command.

Every user error ends in one line on stderr and exit code 2; Ctrl-C ends with
exit code 130 after what was processed so far is written.

Example:
    $ realtime-mask models list
    $ realtime-mask masks clip.mp4 --model mediapipe-selfie --out clip.masks.npz
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Sequence

from engines.errors import MaskingError
from realtime.commands import masks_command, models_command


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that pick and describe a model, shared by the commands that run one."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="mediapipe-selfie",
                       help="built-in name, .tflite/.onnx file, .toml model spec, or URL (default: %(default)s)")
    group.add_argument("--model-sha256", help="expected sha256 of the model file (required for a URL)")
    group.add_argument("--backend", choices=["onnxruntime", "torch"], default="onnxruntime",
                       help="inference backend (default: %(default)s)")
    group.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    group.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="(default: %(default)s)")
    group.add_argument("--input-size", metavar="HxW", help="ONNX models: input size when the file does not say")
    group.add_argument("--input-color", choices=["rgb", "bgr"], help="ONNX models: channel order")
    group.add_argument("--input-mean", metavar="M,M,M", help="ONNX models: per-channel mean on [0,1] values")
    group.add_argument("--input-std", metavar="S,S,S", help="ONNX models: per-channel std on [0,1] values")
    group.add_argument("--input-layout", choices=["nchw", "nhwc"], help="ONNX models: input layout")
    group.add_argument("--output-kind", choices=["probability", "logit", "classes"], help="ONNX models: output")
    group.add_argument("--classes", metavar="I,J", help="with --output-kind classes: channels to mask")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to document the CLI)."""
    common = argparse.ArgumentParser(add_help=False)
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
    masks.add_argument("--out", required=True, help="output .npz (masks = uint8 [N,H,W], round(255*p))")
    masks.add_argument("--batch", type=int, default=4, help="frames per engine call (default: %(default)s)")
    masks.add_argument("--max-frames", type=int, help="stop after this many frames")
    add_model_options(masks)
    masks.set_defaults(handler=masks_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``realtime-mask``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.cache_dir = getattr(args, "cache_dir", None)
    args.verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="realtime-mask: %(levelname)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except MaskingError as exc:
        print(f"realtime-mask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("realtime-mask: interrupted; output written up to the last processed frame", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
