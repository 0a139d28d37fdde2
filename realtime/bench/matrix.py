"""The benchmark workload: a source, warm-up and measured frames, and the matrix of configurations to sweep.

A matrix comes from flags (comma-separated lists) or a TOML file::

    source = "../shared/media/one-by-one-person-detection.mp4"   # or "synthetic:1280x720@30"
    warmup = 10
    frames = 100
    backends = ["onnxruntime", "torch"]
    devices = ["cpu"]
    precisions = ["fp32"]
    models = ["mediapipe-selfie"]
    modes = ["blur", "pixelate"]
    resolutions = ["native", "1280x720"]    # "native" keeps the source's size
    batches = [1, 4]
    streams = [1, 4]                        # sources at once (copies of the workload), batched through one engine

Example:
    >>> m = Matrix(source="synthetic:", modes=("blur", "fill"))
    >>> [c.label for c in m.configs()]
    ['onnxruntime/cpu/fp32/mediapipe-selfie/blur/native/b1', 'onnxruntime/cpu/fp32/mediapipe-selfie/fill/native/b1']
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engines.errors import ConfigError
from engines.loader import BACKEND_LOADERS, PRECISIONS
from engines.tomlfile import read_toml
from realtime.compositor import MODES


@dataclass(frozen=True)
class Config:
    """One point of the matrix."""

    backend: str
    device: str
    precision: str
    model: str
    mode: str
    resolution: str
    batch: int
    streams: int = 1

    @property
    def label(self) -> str:
        several = f"/s{self.streams}" if self.streams > 1 else ""
        return f"{self.backend}/{self.device}/{self.precision}/{self.model}/{self.mode}/{self.resolution}/b{self.batch}{several}"

    @property
    def resolution_wh(self) -> tuple[int, int] | None:
        """(width, height), or None for the source's own size."""
        if self.resolution == "native":
            return None
        width, height = (int(v) for v in self.resolution.lower().split("x"))
        return width, height


@dataclass(frozen=True)
class Matrix:
    """The workload and the axes to sweep (every combination is one configuration)."""

    source: str
    warmup: int = 10
    frames: int = 100
    backends: tuple[str, ...] = ("onnxruntime",)
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    models: tuple[str, ...] = ("mediapipe-selfie",)
    modes: tuple[str, ...] = ("blur",)
    resolutions: tuple[str, ...] = ("native",)
    batches: tuple[int, ...] = (1,)
    streams: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        checks = (("backend", self.backends, tuple(BACKEND_LOADERS)), ("precision", self.precisions, PRECISIONS),
                  ("mode", self.modes, tuple(MODES)))
        for name, values, allowed in checks:
            for value in values:
                if value not in allowed:
                    raise ConfigError(f"unknown {name} {value!r} in the benchmark matrix; choose from {', '.join(allowed)}")
        for device in self.devices:
            if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
                raise ConfigError(f"unknown device {device!r} in the benchmark matrix; use cpu, cuda or cuda:N")
        for resolution in self.resolutions:
            parts = resolution.lower().split("x")
            if resolution != "native" and (len(parts) != 2 or not all(p.isdigit() and int(p) >= 16 for p in parts)):
                raise ConfigError(f"resolution {resolution!r} in the benchmark matrix must be WxH (e.g. 1280x720) or native")
        if any(b < 1 for b in self.batches):
            raise ConfigError(f"batch sizes must be >= 1, got {list(self.batches)}")
        if any(n < 1 for n in self.streams):
            raise ConfigError(f"stream counts must be >= 1, got {list(self.streams)}")
        if self.warmup < 0 or self.frames < 1:
            raise ConfigError(f"need warmup >= 0 and frames >= 1, got {self.warmup} and {self.frames}")

    def configs(self) -> list[Config]:
        """Every combination, in a stable order."""
        return [Config(*values) for values in itertools.product(self.backends, self.devices, self.precisions, self.models,
                                                                 self.modes, self.resolutions, self.batches, self.streams)]


def _listify(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple):
        return tuple(value)
    return (value,)


def matrix_from(values: dict[str, Any]) -> Matrix:
    """Build a :class:`Matrix` from a dict (TOML file or flags); list axes may be comma-separated strings."""
    known = {f.name for f in fields(Matrix)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown benchmark matrix keys {unknown}; known: {sorted(known)}")
    data = {k: v for k, v in values.items() if v is not None}
    for axis in ("backends", "devices", "precisions", "models", "modes", "resolutions", "batches", "streams"):
        if axis in data:
            data[axis] = _listify(data[axis])
    for axis in ("backends", "devices", "precisions", "models", "modes", "resolutions"):
        if not all(isinstance(v, str) for v in data.get(axis, ())):
            raise ConfigError(f"{axis} in the benchmark matrix must be strings, got {list(data[axis])}")
    for axis, what in (("batches", "batch sizes"), ("streams", "stream counts")):
        if axis in data:  # TOML integers, or the digits of a comma-separated flag
            if not all(type(b) is int or (isinstance(b, str) and b.strip().lstrip("-").isdigit()) for b in data[axis]):
                raise ConfigError(f"{what} must be integers, got {list(data[axis])}")
            data[axis] = tuple(int(b) for b in data[axis])
    for key in ("warmup", "frames"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)):
            raise ConfigError(f"{key} in the benchmark matrix must be an integer, got {data[key]!r}")
    if "source" not in data:
        raise ConfigError("the benchmark needs a source (--source or source = ... in the matrix file)")
    if not isinstance(data["source"], str):
        raise ConfigError(f"source in the benchmark matrix must be a string, got {data['source']!r}")
    return Matrix(**data)


def load_matrix_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML matrix file into a dict for :func:`matrix_from`."""
    return read_toml(path, "benchmark matrix")
