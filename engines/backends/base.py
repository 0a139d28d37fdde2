"""The one engine interface every backend implements.

An engine has two calls:

* :meth:`Engine.infer` — the batch call: the model's input tensor (``[N, 3, h, w]``
  float32, values as the spec says: [0, 1] for the built-in models) in, person
  probability ``[N, 1, h, w]`` at model resolution out.
* :meth:`Engine.predict` — the convenience call: one uint8 BGR/RGB frame in,
  float32 ``H x W`` probability at the frame's resolution out.

Backends implement only :meth:`Engine._run` (raw model output for a validated
batch); output interpretation (logit, class scores) lives here, once.

Example:
    >>> import engines, numpy as np  # doctest: +SKIP
    >>> engine = engines.load("mediapipe-selfie", backend="onnxruntime")  # doctest: +SKIP
    >>> engine.predict(np.zeros((270, 480, 3), np.uint8)).shape  # doctest: +SKIP
    (270, 480)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from engines.errors import InferenceError, InputShapeError, ModelFormatError
from engines.preprocess import frames_to_batch, probability_to_frame
from engines.spec import ModelSpec


def expected_input_shape(spec: ModelSpec) -> tuple[int, int, int]:
    """Per-sample input shape of a model, in its layout."""
    height, width = spec.input_hw
    return (3, height, width) if spec.layout == "nchw" else (height, width, 3)


def check_output_shape(shape: Sequence[Any], spec: ModelSpec, model_name: str) -> None:
    """Raise :class:`ModelFormatError` unless a model output shape fits the spec.

    Accepted: ``[N, 1, H, W]`` for probability/logit models, ``[N, C, H, W]`` with C > max(classes)
    for class-score models. Symbolic dimensions (strings/None) are accepted as unknown.
    """
    if len(shape) != 4:
        raise ModelFormatError(
            f"{model_name}: output must be [N, 1, H, W] (probability or logit) or [N, C, H, W] (class scores), "
            f"got {list(shape)}"
        )
    channels = shape[1]
    if not isinstance(channels, int):
        return
    if spec.output in ("probability", "logit") and channels != 1:
        raise ModelFormatError(
            f"{model_name}: output has {channels} channels {list(shape)} but the spec says {spec.output!r} with 1 channel; "
            "set output = \"classes\" and classes = [...] in the model spec"
        )
    if spec.output == "classes" and max(spec.classes) >= channels:
        raise ModelFormatError(
            f"{model_name}: classes {list(spec.classes)} out of range for an output with {channels} channels"
        )


class Engine(ABC):
    """A loaded model on one backend and device.

    Attributes:
        model_name: what was loaded (zoo name or file path).
        spec: the model's pre/postprocessing contract.
        backend: backend name (``"onnxruntime"``, ``"torch"``, ``"tensorrt"``).
        device: ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
        precision: ``"fp32"`` or ``"fp16"``.
    """

    backend: str = ""

    def __init__(self, model_name: str, spec: ModelSpec, device: str, precision: str) -> None:
        self.model_name, self.spec, self.device, self.precision = model_name, spec, device, precision

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={self.model_name!r}, device={self.device!r}, "
                f"precision={self.precision!r}, input_hw={self.spec.input_hw})")

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Raw model output for a validated float32 batch."""

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise :class:`InputShapeError` unless ``batch`` is what the model takes."""
        expected = expected_input_shape(self.spec)
        if (not isinstance(batch, np.ndarray) or batch.dtype != np.float32 or batch.ndim != 4
                or tuple(batch.shape[1:]) != expected or batch.shape[0] < 1):
            got = f"{tuple(batch.shape)} {batch.dtype}" if isinstance(batch, np.ndarray) else type(batch).__name__
            layout = self.spec.layout.upper()
            raise InputShapeError(
                f"model input must be {layout} float32 [N, {', '.join(map(str, expected))}], got {got}; "
                "build it with engines.preprocess.frames_to_batch"
            )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Person probability ``[N, 1, h, w]`` float32 at model resolution for a model-input batch.

        Example:
            >>> engine.infer(np.random.rand(4, 3, 256, 256).astype(np.float32)).shape  # doctest: +SKIP
            (4, 1, 256, 256)
        """
        self.check_batch(batch)
        probability = self.to_probability(self._run(batch))
        if not np.isfinite(probability).all():  # a NaN compares false with every threshold: an unmasked person
            raise self.non_finite_error()
        return probability

    def non_finite_error(self) -> InferenceError:
        """The error for an answer with NaN or infinite values (here, and on the GPU path)."""
        return InferenceError(f"{self.model_name} ({self.backend}, {self.device}, {self.precision}) gave NaN or "
                              "infinite values; with privacy on those frames are written fully masked (an fp16 "
                              "model that overflows: try --precision fp32)")

    def to_probability(self, raw: np.ndarray) -> np.ndarray:
        """Turn raw output into probability ``[N, 1, h, w]`` per the spec's output kind."""
        raw = np.asarray(raw, np.float32)
        if self.spec.output == "probability":
            return raw
        if self.spec.output == "logit":
            return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        picked = shifted[:, list(self.spec.classes)].sum(axis=1, keepdims=True)
        return (picked / shifted.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_batch(self, frames: Sequence[np.ndarray], frame_color: str = "bgr") -> list[np.ndarray]:
        """Probability at each frame's own resolution (float32 HxW) for several uint8 frames."""
        if not frames:
            return []
        probability = self.infer(frames_to_batch(frames, self.spec, frame_color))
        return [probability_to_frame(p[0], frame.shape[:2]) for p, frame in zip(probability, frames, strict=True)]

    def predict(self, frame: np.ndarray, frame_color: str = "bgr") -> np.ndarray:
        """Person probability (float32 HxW in [0, 1]) for one uint8 HxWx3 frame.

        Example:
            >>> engine.predict(cv2.imread("person.jpg")).max() <= 1.0  # doctest: +SKIP
            True
        """
        return self.predict_batch([frame], frame_color)[0]

    def close(self) -> None:
        """Release backend resources (sessions, CUDA graphs)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
