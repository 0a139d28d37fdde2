"""PyTorch engine: on CPU in float32; on CUDA in fp16, channels_last, replayed as a CUDA graph.

The model is launch-bound on a GPU (hundreds of tiny kernels), so on CUDA each
input shape gets a captured CUDA graph that is replayed; if capture fails the
engine says so in a warning and runs eagerly.

Example:
    >>> engine = TorchEngine(module, spec, model_name="selfie", device="cpu")  # doctest: +SKIP
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
    """

    backend = "torch"

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, model_name: str, device: str = "cpu",
                 precision: str = "fp32", cuda_graphs: bool = True) -> None:
        super().__init__(model_name, spec, device, precision)
        self.torch_device = torch.device(device)
        if self.torch_device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("device cuda requested but torch sees no CUDA GPU here; use --device cpu")
        if precision == "fp16" and self.torch_device.type != "cuda":
            raise ConfigError("precision fp16 needs a CUDA device for the torch backend; use --precision fp32 on CPU")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        module = module.eval().to(self.torch_device, self.dtype)
        if self.torch_device.type == "cuda":
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.module = module
        self.cuda_graphs = cuda_graphs and self.torch_device.type == "cuda"
        self._graphs: dict[tuple[int, ...], _GraphRunner | None] = {}
        self._stream = torch.cuda.Stream(self.torch_device) if self.cuda_graphs else None

    def infer_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw model output for a batch already on this engine's device (no host copies).

        The returned tensor may be a CUDA graph's static output: copy it before the next call.
        """
        batch = batch.to(self.torch_device, self.dtype, non_blocking=True)
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
