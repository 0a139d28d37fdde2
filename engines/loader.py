"""Resolve a model reference and load it on a backend: :func:`load`.

A model reference is a built-in name (``mediapipe-selfie``), a ``.tflite`` or
``.onnx`` file, a ``.toml`` model spec naming a file, or an http(s)/file URL
with its expected sha256.

Example:
    >>> import engines
    >>> engine = engines.load("mediapipe-selfie", backend="torch")  # doctest: +SKIP
    >>> engine.infer(np.zeros((1, 3, 256, 256), np.float32)).shape  # doctest: +SKIP
    (1, 1, 256, 256)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from engines import zoo
from engines.backends.base import Engine
from engines.errors import BackendError, ConfigError, ModelFormatError, ModelNotFoundError
from engines.spec import ModelSpec, load_spec_file

if TYPE_CHECKING:
    import torch  # imported where a torch engine is made: a second of every start otherwise

BACKENDS = ("onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16")
URL_SCHEMES = ("http://", "https://", "file://")


@dataclass
class ResolvedModel:
    """A model file on disk with its spec, ready for any backend."""

    name: str
    path: Path
    spec: ModelSpec
    sha256: str
    cache: Path

    @property
    def kind(self) -> str:
        return "tflite" if self.path.suffix == ".tflite" else "onnx"

    @cached_property
    def torch_module(self) -> torch.nn.Module:
        """The model as a torch module (TFLite converted by us, ONNX by onnx2torch)."""
        if self.kind == "tflite":
            from engines.converters.tflite_to_torch import convert_tflite

            return convert_tflite(self.path, self.name)
        try:
            from onnx2torch import convert
        except ImportError as exc:
            raise BackendError(
                f"the torch backend runs ONNX models ({self.name}) through onnx2torch, which is not importable here "
                "(pip install 'realtime-masking[onnx-torch]', needs torchvision); use --backend onnxruntime"
            ) from exc
        try:
            return convert(str(self.path)).eval()
        except NotImplementedError as exc:
            raise ModelFormatError(f"{self.name}: onnx2torch cannot convert it ({exc}); use --backend onnxruntime") from exc

    def onnx_path(self, precision: str = "fp32") -> Path:
        """The ONNX file for this precision, exported (and cached) on first use."""
        from engines.converters.onnx_export import export_fp16, export_onnx, is_current

        if self.kind == "onnx" and precision == "fp32":
            return self.path
        # Next to the model when it lives in the cache (built-in models), else under converted/<sha>.
        in_cache = self.cache.resolve() in self.path.resolve().parents
        folder = self.path.parent if in_cache else self.cache / "converted" / self.sha256[:16]
        fp32 = self.path if self.kind == "onnx" else folder / f"{self.path.stem}.onnx"
        if self.kind == "tflite" and not is_current(fp32, self.sha256):
            export_onnx(self.torch_module, fp32, self.sha256, self.spec.input_hw)
        if precision == "fp32":
            return fp32
        fp16 = folder / f"{self.path.stem}.fp16.onnx"
        if not is_current(fp16, self.sha256):
            export_fp16(fp32, fp16)
        return fp16


def _spec_for_tflite(path: Path, sha: str) -> ModelSpec:
    for model in zoo.MODELS.values():
        if model.sha256 == sha:
            return model.spec
    from engines.converters.tflite_to_torch import convert_tflite

    return ModelSpec(input_hw=convert_tflite(path).input_hw)


def _spec_for_onnx(path: Path, input_hw: tuple[int, int] | None = None) -> ModelSpec:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise ModelFormatError(f"{path} is not a readable ONNX model ({type(exc).__name__}); give an intact .onnx file") from exc
    inputs = [i for i in graph.input if i.name not in {init.name for init in graph.initializer}]
    if len(inputs) != 1:
        raise ModelFormatError(f"{path}: expected one image input, got {len(inputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if input_hw is not None:
        return ModelSpec(input_hw=input_hw, layout="nhwc" if len(dims) == 4 and dims[3] == 3 else "nchw")
    if len(dims) == 4 and dims[1] == 3 and dims[2] and dims[3]:
        return ModelSpec(input_hw=(dims[2], dims[3]))
    if len(dims) == 4 and dims[3] == 3 and dims[1] and dims[2]:
        return ModelSpec(input_hw=(dims[1], dims[2]), layout="nhwc")
    if len(dims) == 4 and dims[2] and dims[3]:  # channel count is checked (with a clear message) at load
        return ModelSpec(input_hw=(dims[2], dims[3]))
    raise ModelFormatError(
        f"{path}: cannot tell the input size from input shape {dims}; expected NCHW [N, 3, H, W] or NHWC [N, H, W, 3] "
        "float32, or give input_size in a model spec (.toml) or --input-size"
    )


def resolve(model: str | Path, cache: str | Path | None = None, sha256: str | None = None,
            spec: ModelSpec | None = None) -> ResolvedModel:
    """Find (fetching if needed) a model and its spec.

    Args:
        model: built-in name, file path (.tflite, .onnx, .toml spec) or URL (needs ``sha256``).
        cache: model cache folder (default: :func:`engines.zoo.cache_dir`).
        sha256: expected checksum for a URL (or to verify a local file).
        spec: overrides the spec found for the model.

    Example:
        >>> resolve("mediapipe-selfie").spec.input_hw  # doctest: +SKIP
        (256, 256)
    """
    cache_path = zoo.cache_dir(cache)
    text = str(model)
    if text in zoo.MODELS:
        entry = zoo.MODELS[text]
        return ResolvedModel(text, zoo.fetch(text, cache_path), spec or entry.spec, entry.sha256, cache_path)
    if text.startswith(URL_SCHEMES):
        if not sha256:
            raise ConfigError(f"a model URL needs its expected sha256: add --model-sha256 HEX for {text}")
        path = zoo.fetch_url(text, sha256, cache_path)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            if path.suffix or "/" in text:
                raise ModelNotFoundError(f"model file {path} does not exist; give an existing .tflite/.onnx/.toml path")
            zoo.get_model(text)  # raises the unknown-name error
        if path.is_dir():
            raise ModelNotFoundError(f"model path {path} is a folder; give a .tflite, .onnx or .toml file")
    file_fields: dict[str, object] = {}
    if path.suffix == ".toml":
        file_fields, named = load_spec_file(path)
        if named is None or not named.is_file():
            raise ModelNotFoundError(f"model spec {path} names no existing model file (path = {named})")
        path = named
    if path.suffix not in (".tflite", ".onnx"):
        raise ModelFormatError(f"model file {path} must end in .tflite or .onnx (or be a .toml spec)")
    actual = zoo.sha256_file(path)
    if sha256 and actual != sha256.lower():
        raise zoo.ChecksumError(f"model file {path} has sha256 {actual}, expected {sha256}")
    if spec is None:
        input_hw = file_fields.get("input_hw")
        is_tflite = path.suffix == ".tflite"
        found = _spec_for_tflite(path, actual) if is_tflite else _spec_for_onnx(path, input_hw)  # type: ignore[arg-type]
        spec = found.with_overrides(**file_fields)
    return ResolvedModel(path.name, path, spec, actual, cache_path)


def _load_onnxruntime(model: ResolvedModel, device: str, precision: str) -> Engine:
    from engines.backends.onnxruntime_backend import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model.onnx_path(precision), model.spec, model.name, device, precision)


def _load_torch(model: ResolvedModel, device: str, precision: str) -> Engine:
    from engines.backends.torch_backend import TorchEngine

    return TorchEngine(model.torch_module, model.spec, model.name, device, precision)


def _load_torch_compile(model: ResolvedModel, device: str, precision: str) -> Engine:
    from engines.backends.torch_backend import TorchEngine

    return TorchEngine(model.torch_module, model.spec, model.name, device, precision, compile=True)


def _load_tensorrt(model: ResolvedModel, device: str, precision: str) -> Engine:
    from engines.backends.tensorrt_backend import TensorRTEngine

    return TensorRTEngine(model.onnx_path(precision), model.spec, model.name, device, precision,
                          cache_dir=model.cache / "tensorrt", progress=True)


BACKEND_LOADERS: dict[str, Callable[[ResolvedModel, str, str], Engine]] = {
    "onnxruntime": _load_onnxruntime,
    "torch": _load_torch,
    "torch-compile": _load_torch_compile,
    "tensorrt": _load_tensorrt,
}


def load(model: str | Path | ResolvedModel = zoo.DEFAULT_MODEL, backend: str | None = None, device: str = "cpu",
         precision: str = "fp32", cache: str | Path | None = None, sha256: str | None = None,
         spec: ModelSpec | None = None) -> Engine:
    """Load a segmentation model on a backend.

    Args:
        model: built-in name, path (.tflite/.onnx/.toml) or URL; or an already resolved model.
        backend: ``"onnxruntime"`` (default), ``"torch"``, ``"torch-compile"`` (the torch engine compiled
            with ``torch.compile``; a minute to load the first time) or ``"tensorrt"``.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        precision: ``"fp32"`` or ``"fp16"`` (fp16 uses the FP16 ONNX, or half weights in torch).
        cache: model cache folder.
        sha256: expected checksum (required for URLs).
        spec: override the model's pre/postprocessing spec.

    Returns:
        An :class:`~engines.backends.base.Engine`.

    Example:
        >>> engine = load("mediapipe-selfie-landscape", backend="onnxruntime")  # doctest: +SKIP
        >>> engine.spec.input_hw  # doctest: +SKIP
        (144, 256)
    """
    backend = backend or "onnxruntime"
    if backend not in BACKEND_LOADERS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_LOADERS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose fp32 or fp16")
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    resolved = model if isinstance(model, ResolvedModel) else resolve(model, cache, sha256, spec)
    return BACKEND_LOADERS[backend](resolved, device, precision)
