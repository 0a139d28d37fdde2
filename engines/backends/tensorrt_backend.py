"""TensorRT engine, written to the TensorRT 10 and 11 Python API (name-based I/O, strongly typed networks).

Build: ``Builder`` → network with the ``STRONGLY_TYPED`` flag (never ``EXPLICIT_BATCH``, gone in TRT 11)
→ ``OnnxParser`` (every parse error reported) → workspace through ``set_memory_pool_limit`` → one
optimization profile whose opt shape is the real batch → timing cache loaded before and saved after
every build → ``build_serialized_network`` (None is an error). FP16 comes from the FP16 ONNX, which
keeps FP32 inputs/outputs: a strongly typed network takes its precision from the file (TRT 11 has no
``BuilderFlag.FP16``). The built engine's I/O dtypes are checked.

Plans are cached on disk under sha256(ONNX) + TensorRT version + GPU name + compute capability +
driver/CUDA version + build settings; a plan that ``deserialize_cuda_engine`` rejects is rebuilt.

Run: name-based API only (``num_io_tensors``, ``get_tensor_name/mode/dtype/shape``, ``set_input_shape``,
``set_tensor_address`` with torch tensors' ``data_ptr()``, ``execute_async_v3`` on the caller's stream,
its result checked); one execution context and stream per worker thread; preallocated outputs; the
engine call optionally captured in a CUDA graph (falls back to direct calls when capture fails).

Example:
    >>> engine = engines.load("mediapipe-selfie", backend="tensorrt", device="cuda", precision="fp16")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.backends.base import Engine
from engines.errors import BackendError, ModelFormatError
from engines.spec import ModelSpec

log = logging.getLogger(__name__)

try:
    import tensorrt as trt

    HAVE_TENSORRT = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_TENSORRT = False

WORKSPACE_BYTES = 1 << 30


def require_tensorrt() -> None:
    """Raise a :class:`BackendError` that says how to get TensorRT when it is not importable."""
    if not HAVE_TENSORRT:
        raise BackendError("TensorRT is not installed here (pip install tensorrt on an NVIDIA GPU machine); "
                           "use --backend torch --device cuda, or onnxruntime")


def _gpu_identity(device_index: int) -> dict[str, str]:
    import torch

    props = torch.cuda.get_device_properties(device_index)
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "cuda": str(torch.version.cuda), "driver": _driver_version()}


def _driver_version() -> str:
    try:
        from cuda.bindings import driver

        _status, version = driver.cuDriverGetVersion()
        return str(version)
    except ImportError:
        return "unknown"


def plan_key(onnx_path: Path, device_index: int, settings: dict[str, Any]) -> str:
    """Cache key of a plan: ONNX bytes, TensorRT version, GPU identity and build settings."""
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    require_tensorrt()
    identity = {"onnx": digest, "tensorrt": trt.__version__, **_gpu_identity(device_index), **settings}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def build_plan(onnx_path: Path, spec: ModelSpec, max_batch: int, opt_batch: int, timing_cache: Path,
               workspace_bytes: int = WORKSPACE_BYTES, progress: bool = False) -> bytes:
    """Build a serialized TensorRT plan from an ONNX file (see the module doc for the steps)."""
    require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelFormatError(f"TensorRT cannot parse {onnx_path}: " + " | ".join(errors or ["no details"]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    input_tensor = network.get_input(0)
    sample = (3, *spec.input_hw) if spec.layout == "nchw" else (*spec.input_hw, 3)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_tensor.name, (1, *sample), (opt_batch, *sample), (max_batch, *sample))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, False)
    start = time.monotonic()
    if progress:
        print(f"building TensorRT engine for {onnx_path.name} (batch {opt_batch}, max {max_batch})...", file=sys.stderr)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"TensorRT could not build an engine for {onnx_path} (see the TensorRT log above)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    if progress:
        print(f"built in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return bytes(plan)


@dataclass
class _WorkerState:
    """What one worker thread owns: its execution context, stream, static I/O per shape and CUDA graphs."""

    context: trt.IExecutionContext
    stream: Any
    outputs: dict[tuple[int, ...], tuple[Any, Any]] = field(default_factory=dict)
    graphs: dict[tuple[int, ...], Any] = field(default_factory=dict)


class TensorRTEngine(Engine):
    """Runs a TensorRT plan built (or loaded from the plan cache) for one ONNX file.

    Args:
        onnx_path: the model's ONNX (the FP16 file for ``precision="fp16"``).
        spec: the model's spec.
        model_name: name for messages.
        device: ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp32"`` or ``"fp16"`` (which ONNX was given).
        max_batch: largest batch the profile accepts; ``opt_batch`` the batch it is tuned for.
        cache_dir: where plans and the timing cache live.
        cuda_graphs: capture each batch shape's engine call in a CUDA graph.
    """

    backend = "tensorrt"

    def __init__(self, onnx_path: str | Path, spec: ModelSpec, model_name: str, device: str = "cuda",
                 precision: str = "fp32", max_batch: int = 16, opt_batch: int = 1, cache_dir: str | Path | None = None,
                 cuda_graphs: bool = True, progress: bool = False) -> None:
        super().__init__(model_name, spec, device, precision)
        require_tensorrt()
        import torch

        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise BackendError("the TensorRT backend needs a CUDA GPU: use --device cuda")
        self.torch_device = torch.device(device)
        index = self.torch_device.index or 0
        onnx_path = Path(onnx_path)
        folder = Path(cache_dir) if cache_dir else onnx_path.parent / "tensorrt"
        settings = {"max_batch": max_batch, "opt_batch": opt_batch, "workspace": WORKSPACE_BYTES, "precision": precision}
        plan_path = folder / f"{onnx_path.stem}-{plan_key(onnx_path, index, settings)}.plan"
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine: trt.ICudaEngine | None = None
        if plan_path.is_file():
            self.engine = self.runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if self.engine is None:
                log.warning("cached plan %s was rejected by this TensorRT; rebuilding", plan_path)
        if self.engine is None:
            plan = build_plan(onnx_path, spec, max_batch, opt_batch, folder / "timing.cache", progress=progress)
            folder.mkdir(parents=True, exist_ok=True)
            plan_path.write_bytes(plan)
            self.engine = self.runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise BackendError(f"TensorRT rejected the plan it just built for {onnx_path}")
        self.plan_path, self.max_batch, self.cuda_graphs = plan_path, max_batch, cuda_graphs
        self.inputs, self.outputs = self._io_names(self.engine)
        self._local = threading.local()

    def _io_names(self, engine: trt.ICudaEngine) -> tuple[list[str], list[str]]:
        inputs: list[str] = []
        outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise ModelFormatError(f"{self.model_name}: engine tensor {name} is {engine.get_tensor_dtype(name)}, "
                                       "expected float32 inputs and outputs (export the FP16 ONNX with FP32 I/O)")
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFormatError(f"{self.model_name}: expected one input and one output, got {inputs} and {outputs}")
        return inputs, outputs

    def _worker(self) -> _WorkerState:
        """This thread's execution context, stream, output buffers and graphs."""
        state: _WorkerState | None = getattr(self._local, "state", None)
        if state is None:
            import torch

            assert self.engine is not None
            context = self.engine.create_execution_context()
            if context is None:
                raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
            state = _WorkerState(context, torch.cuda.Stream(self.torch_device))
            self._local.state = state
        return state

    def infer_tensor(self, batch: Any, stream: Any = None) -> Any:
        """Raw output for a float32 CUDA tensor batch, computed on ``stream`` (default: this thread's)."""
        import torch

        if batch.shape[0] > self.max_batch:
            raise BackendError(f"batch {batch.shape[0]} exceeds the engine's max batch {self.max_batch}; "
                               "rebuild with realtime-mask build-engine --batch N")
        state = self._worker()
        context, stream = state.context, stream or state.stream
        batch = batch.to(self.torch_device, torch.float32).contiguous()
        key = tuple(batch.shape)
        name_in, name_out = self.inputs[0], self.outputs[0]
        if key not in state.outputs:
            if not context.set_input_shape(name_in, key):
                raise BackendError(f"TensorRT refused input shape {key} for {name_in}")
            out_shape = tuple(context.get_tensor_shape(name_out))
            state.outputs[key] = (batch.clone(), torch.empty(out_shape, dtype=torch.float32, device=self.torch_device))
        static_in, static_out = state.outputs[key]
        context.set_input_shape(name_in, key)
        context.set_tensor_address(name_in, static_in.data_ptr())
        context.set_tensor_address(name_out, static_out.data_ptr())
        caller = torch.cuda.current_stream(self.torch_device)
        stream.wait_stream(caller)  # the batch was made on the caller's stream
        with torch.cuda.stream(stream):
            static_in.copy_(batch, non_blocking=True)
            graph = state.graphs.get(key)
            if graph is None and self.cuda_graphs and key not in state.graphs:
                state.graphs[key] = graph = self._capture(context, stream)
            if graph is not None:
                graph.replay()
            elif not context.execute_async_v3(stream.cuda_stream):
                raise BackendError("TensorRT execute_async_v3 failed")
        caller.wait_stream(stream)  # the caller's later work sees the output
        return static_out

    def _capture(self, context: trt.IExecutionContext, stream: Any) -> Any:
        import torch

        if not context.execute_async_v3(stream.cuda_stream):  # flushes deferred shape updates before capture
            raise BackendError("TensorRT execute_async_v3 failed")
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                context.execute_async_v3(stream.cuda_stream)
            return graph
        except RuntimeError as exc:
            log.warning("CUDA graph capture of the TensorRT engine failed (%s); calling it directly", exc)
            return None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        output = self.infer_tensor(torch.from_numpy(batch).pin_memory().to(self.torch_device, non_blocking=True))
        return output.cpu().numpy()

    def close(self) -> None:
        self._local = threading.local()
