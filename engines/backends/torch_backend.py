"""PyTorch engine: on CPU in float32; on CUDA in fp16, channels_last, replayed as a CUDA graph.

The model is launch-bound on a GPU (hundreds of tiny kernels), so on CUDA each
input shape gets a captured CUDA graph that is replayed; if capture fails the
engine says so in a warning and runs eagerly. :meth:`TorchEngine.prepare` captures ahead
the batch sizes a run will use (its batch and the powers of two below it); a batch of
another size up to that is padded to the next captured one, so a live source's partial
batches never capture mid-stream.

``compile=True`` (backend ``torch-compile``) first compiles the module with ``torch.compile``
(TorchInductor: fused Triton kernels on CUDA, fused C++ on CPU), once per input shape, ahead
of use: batch 1 while loading, other batch sizes through :meth:`TorchEngine.prepare` (the
GPU stage prepares its batch size before capture starts). Inductor keeps its compiled code in
an on-disk cache, so a second load of the same model takes seconds instead of half a minute.

Example:
    >>> engine = TorchEngine(module, spec, model_name="selfie", device="cpu")  # doctest: +SKIP
    >>> engine.prepare(16)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from engines.backends.base import Engine
from engines.errors import BackendError, ConfigError
from engines.spec import ModelSpec

log = logging.getLogger(__name__)


def graph_batch_sizes(batch_size: int) -> list[int]:
    """The batch sizes a CUDA-graph engine prepared for ``batch_size`` captures: the powers of two below it, and it.

    Example:
        >>> graph_batch_sizes(12)
        [1, 2, 4, 8, 12]
    """
    return [*(1 << k for k in range(batch_size.bit_length()) if 1 << k < batch_size), batch_size]


class _GraphRunner:
    """One captured CUDA graph for a fixed input shape."""

    def __init__(self, module: torch.nn.Module, example: torch.Tensor, stream: torch.cuda.Stream) -> None:
        self.static_input = example.clone()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up cudnn autotuning off the capture
                module(self.static_input)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream):
            self.static_output = module(self.static_input)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.static_input.copy_(batch)
        self.graph.replay()
        return self.static_output


class TorchEngine(Engine):
    """Runs a torch module (converted from TFLite or ONNX).

    Args:
        module: takes the model input tensor and returns raw output ``[N, C, h, w]``.
        spec: the model's spec.
        model_name: name for messages.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        precision: ``"fp32"``, or ``"fp16"`` on CUDA.
        cuda_graphs: replay CUDA graphs per input shape on CUDA.
        compile: compile the module with ``torch.compile`` (backend name ``torch-compile``).
    """

    backend = "torch"

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, model_name: str, device: str = "cpu",
                 precision: str = "fp32", cuda_graphs: bool = True, compile: bool = False) -> None:
        super().__init__(model_name, spec, device, precision)
        if compile:
            self.backend = "torch-compile"
        self.torch_device = torch.device(device)
        if self.torch_device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("device cuda requested but torch sees no CUDA GPU here; use --device cpu")
        if precision == "fp16" and self.torch_device.type != "cuda":
            raise ConfigError("precision fp16 needs a CUDA device for the torch backend; use --precision fp32 on CPU")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        module = module.eval().to(self.torch_device, self.dtype)
        if self.torch_device.type == "cuda":
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.compiled = compile
        if compile:
            module = torch.compile(module, dynamic=False)  # type: ignore[assignment]
        self.module = module
        self.cuda_graphs = cuda_graphs and self.torch_device.type == "cuda"
        self._graphs: dict[tuple[int, ...], _GraphRunner | None] = {}
        self._stream = torch.cuda.Stream(self.torch_device) if self.cuda_graphs else None
        self._prepared: set[int] = set()
        if compile:
            self.prepare(1)

    def prepare(self, batch_size: int) -> None:
        """Compile (``torch-compile``) and capture a CUDA graph for batches of ``batch_size`` now, off the hot path.

        A compiled engine then runs only prepared sizes: a smaller batch is padded up to the next prepared size,
        a larger one is cut into batches of the largest — so no batch size ever compiles mid-stream. A CUDA-graph
        engine captures :func:`graph_batch_sizes` and pads the same way; a batch larger than all of them (a
        strategy's tiles) is captured once at its own size.
        """
        sizes = graph_batch_sizes(batch_size) if self.cuda_graphs and not self.compiled else [batch_size]
        for size in sizes:
            if size in self._prepared:
                continue
            shape = (size, 3, *self.spec.input_hw) if self.spec.layout == "nchw" else (size, *self.spec.input_hw, 3)
            example = torch.rand(shape, generator=torch.Generator().manual_seed(size))
            self._infer_shape(example.to(self.torch_device, self.dtype))
            if self.torch_device.type == "cuda":
                torch.cuda.synchronize(self.torch_device)
            self._prepared.add(size)

    def infer_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw model output for a batch already on this engine's device (no host copies).

        The returned tensor may be a CUDA graph's static output: copy it before the next call.
        """
        batch = batch.to(self.torch_device, self.dtype, non_blocking=True)
        n = batch.shape[0]
        if n in self._prepared or not (self.compiled or self.cuda_graphs):
            return self._infer_shape(batch)
        larger = [size for size in self._prepared if size > n]
        if larger:  # pad up to the next prepared size
            padded = torch.zeros((min(larger), *batch.shape[1:]), dtype=batch.dtype, device=batch.device)
            padded[:n] = batch
            return self._infer_shape(padded)[:n]
        if not self.compiled:  # a CUDA graph of this size, captured once
            return self._infer_shape(batch)
        step = max(self._prepared)
        return torch.cat([self.infer_tensor(batch[k:k + step]).clone() for k in range(0, n, step)])

    def _infer_shape(self, batch: torch.Tensor) -> torch.Tensor:
        if self.torch_device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if not self.cuda_graphs:
                return self.module(batch)
            key = tuple(batch.shape)
            if key not in self._graphs:
                self._graphs[key] = self._capture(batch)
            runner = self._graphs[key]
            return runner(batch) if runner is not None else self.module(batch)

    def _capture(self, batch: torch.Tensor) -> _GraphRunner | None:
        assert self._stream is not None
        try:
            return _GraphRunner(self.module, batch, self._stream)
        except RuntimeError as exc:
            log.warning("CUDA graph capture failed for input %s (%s); running eagerly", tuple(batch.shape), exc)
            return None

    def _run(self, batch: np.ndarray) -> Any:
        output = self.infer_tensor(torch.from_numpy(batch))
        return output.float().cpu().numpy()

    def close(self) -> None:
        self._graphs.clear()
