"""How a segmentation model wants its pixels and what its output means.

A :class:`ModelSpec` travels with every engine: preprocessing reads the input
part, postprocessing the output part. Built-in models carry theirs; a user ONNX
model gets one from a small TOML file or from CLI flags.

TOML form (every key optional except where the ONNX file cannot tell)::

    path = "deeplab.onnx"          # relative to the spec file
    input_size = [513, 513]        # H, W; default: the ONNX input's static size
    color = "rgb"                  # or "bgr"
    mean = [0.485, 0.456, 0.406]   # applied to values in [0, 1]
    std = [0.229, 0.224, 0.225]
    layout = "nchw"                # or "nhwc"
    output = "classes"             # "probability", "logit" or "classes"
    classes = [15]                 # with output = "classes": channels that count as the target

Example:
    >>> spec = ModelSpec(input_hw=(256, 256))
    >>> spec.color, spec.output
    ('rgb', 'probability')
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engines.errors import ConfigError
from engines.tomlfile import read_toml

COLORS = ("rgb", "bgr")
LAYOUTS = ("nchw", "nhwc")
OUTPUT_KINDS = ("probability", "logit", "classes")
RESIZE_KINDS = ("linear", "mediapipe")


@dataclass(frozen=True)
class ModelSpec:
    """Pre- and postprocessing contract of one model.

    Args:
        input_hw: model input (height, width).
        color: channel order the model was trained on, ``"rgb"`` or ``"bgr"``.
        mean: per-channel mean subtracted from values in [0, 1].
        std: per-channel divisor applied after the mean.
        layout: input tensor layout, ``"nchw"`` or ``"nhwc"``.
        output: ``"probability"`` ([N,1,H,W] in [0,1]), ``"logit"`` ([N,1,H,W], sigmoid applied by us)
            or ``"classes"`` ([N,C,H,W] scores, softmax over C, the ``classes`` channels summed).
        classes: channel indices that form the mask when ``output == "classes"``.
        resize: ``"mediapipe"`` reproduces MediaPipe's ImageToTensorCalculator warp (corner-aligned,
            zero border); ``"linear"`` is OpenCV's half-pixel bilinear resize.
    """

    input_hw: tuple[int, int]
    color: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "nchw"
    output: str = "probability"
    classes: tuple[int, ...] = field(default_factory=tuple)
    resize: str = "linear"

    def __post_init__(self) -> None:
        h, w = self.input_hw
        if h < 1 or w < 1:
            raise ConfigError(f"model input size must be positive (H, W), got {self.input_hw}")
        choices: tuple[tuple[str, str, tuple[str, ...]], ...] = (("color", self.color, COLORS), ("layout", self.layout, LAYOUTS),
                                     ("output", self.output, OUTPUT_KINDS), ("resize", self.resize, RESIZE_KINDS))
        for name, value, allowed in choices:
            if value not in allowed:
                raise ConfigError(f"model spec {name} must be one of {', '.join(allowed)}, got {value!r}")
        for key, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3:
                raise ConfigError(f"model spec {key} needs 3 values (one per channel), got {list(values)}")
        if any(s == 0 for s in self.std):
            raise ConfigError(f"model spec std must not contain 0, got {list(self.std)}")
        if any(c < 0 for c in self.classes):
            raise ConfigError(f"model spec classes are channel indices (0, 1, ...), got {list(self.classes)}")
        if self.output == "classes" and not self.classes:
            raise ConfigError("model spec output 'classes' needs classes = [index, ...] naming the target channels")

    def with_overrides(self, **overrides: Any) -> ModelSpec:
        """Return a copy with the given non-None fields replaced (used for CLI flags)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_spec_file(path: str | Path) -> tuple[dict[str, Any], Path | None]:
    """Read a TOML model spec.

    Args:
        path: the ``.toml`` file.

    Returns:
        The spec fields it sets (apply with :meth:`ModelSpec.with_overrides`) and the model path it
        names (resolved against the file's folder), or None.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.toml"
        >>> _ = f.write_text('input_size = [64, 32]\\ncolor = "bgr"\\n')
        >>> load_spec_file(f)[0]
        {'color': 'bgr', 'input_hw': (64, 32)}
    """
    path = Path(path)
    data = read_toml(path, "model spec")
    known = ({f.name for f in fields(ModelSpec)} - {"input_hw"}) | {"path", "input_size"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"model spec {path}: unknown keys {unknown}; known keys: {sorted(known)}")
    if "path" in data and not isinstance(data["path"], str):
        raise ConfigError(f"model spec {path}: path must be a string (the model file), got {data['path']!r}")
    model_path = (path.parent / data.pop("path")) if "path" in data else None
    if "input_size" in data:
        size = data.pop("input_size")
        if not _numbers(size, int) or len(size) != 2:
            raise ConfigError(f"model spec {path}: input_size must be [H, W], got {size}")
        data["input_hw"] = (size[0], size[1])
    for key, kind, example in (("mean", float, "[0.485, 0.456, 0.406]"), ("std", float, "[0.229, 0.224, 0.225]"),
                               ("classes", int, "[15]")):
        if key in data:
            if not _numbers(data[key], kind):
                raise ConfigError(f"model spec {path}: {key} must be a list of {kind.__name__}s like {example}, "
                                  f"got {data[key]!r}")
            data[key] = tuple(data[key])
    for key in ("color", "layout", "output", "resize"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"model spec {path}: {key} must be a string, got {data[key]!r}")
    return data, model_path


def _numbers(values: Any, kind: type) -> bool:
    """A TOML list of ints (``kind`` int) or of numbers (``kind`` float); booleans are neither."""
    allowed = (int,) if kind is int else (int, float)
    return isinstance(values, list) and all(isinstance(v, allowed) and not isinstance(v, bool) for v in values)
