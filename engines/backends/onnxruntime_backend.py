"""ONNX Runtime engine: the default on CPU.

On a machine whose onnxruntime build offers them (``onnxruntime-gpu``), the
CUDA and TensorRT execution providers are used for ``device="cuda"``; the
TensorRT EP gets its engine cache enabled under the model cache so the engine
is built once.

Example:
    >>> engine = OnnxRuntimeEngine("selfie.onnx", spec, model_name="selfie")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.backends.base import Engine, check_output_shape, expected_input_shape
from engines.errors import BackendError, ModelFormatError
from engines.spec import ModelSpec

_ORT_FLOAT = "tensor(float)"


def _providers(device: str, precision: str, engine_cache: Path) -> list[str | tuple[str, dict[str, object]]]:
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    device_id = int(device.split(":")[1]) if ":" in device else 0
    chosen: list[str | tuple[str, dict[str, object]]] = []
    if "TensorrtExecutionProvider" in available:
        engine_cache.mkdir(parents=True, exist_ok=True)
        chosen.append(("TensorrtExecutionProvider", {
            "device_id": device_id, "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(engine_cache), "trt_timing_cache_enable": True,
            "trt_fp16_enable": precision == "fp16",
        }))
    if "CUDAExecutionProvider" in available:
        chosen.append(("CUDAExecutionProvider", {"device_id": device_id}))
    if not chosen:
        raise BackendError(
            f"onnxruntime here has no CUDA provider (available: {', '.join(available)}); "
            "install onnxruntime-gpu, or use --device cpu or --backend torch"
        )
    return [*chosen, "CPUExecutionProvider"]


class OnnxRuntimeEngine(Engine):
    """Runs an ONNX file with ONNX Runtime.

    Args:
        onnx_path: the model file.
        spec: the model's spec.
        model_name: name for messages.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        precision: ``"fp32"`` or ``"fp16"`` (which file was given is the caller's choice).
        threads: intra-op threads (0: ONNX Runtime's default, one per physical core).
    """

    backend = "onnxruntime"

    def __init__(self, onnx_path: str | Path, spec: ModelSpec, model_name: str, device: str = "cpu",
                 precision: str = "fp32", threads: int = 0) -> None:
        super().__init__(model_name, spec, device, precision)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        path = Path(onnx_path)
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=_providers(device, precision, path.parent / "trt-ep-cache"))
        except (ort.capi.onnxruntime_pybind11_state.InvalidGraph,
                ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
                ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            raise ModelFormatError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from exc
        self._check_io()
        self.input_name = self.session.get_inputs()[0].name

    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelFormatError(f"{self.model_name}: expected one image input, got {len(inputs)}: "
                                   f"{[i.name for i in inputs]}")
        shape, dtype = list(inputs[0].shape), inputs[0].type
        expected = expected_input_shape(self.spec)
        channel_axis = 1 if self.spec.layout == "nchw" else 3
        if (len(shape) != 4 or dtype != _ORT_FLOAT
                or (isinstance(shape[channel_axis], int) and shape[channel_axis] != 3)):
            raise ModelFormatError(
                f"{self.model_name}: model input must be {self.spec.layout.upper()} float32 with 3 channels "
                f"[N, {', '.join(map(str, expected))}], got {shape} {dtype}; set layout in the model spec or re-export"
            )
        static = [d for d in shape[1:] if isinstance(d, int)]
        if len(static) == 3 and tuple(shape[1:]) != expected:
            raise ModelFormatError(f"{self.model_name}: model input is {shape} but the spec says {list(expected)}; "
                                   "fix input_size in the model spec")
        check_output_shape(outputs[0].shape, self.spec, self.model_name)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
