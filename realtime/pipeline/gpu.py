"""The GPU-resident path: frames go up once, stay on the GPU through preprocessing, inference and the fused
compositor, and come down once. Each stage is timed with CUDA events, read without a host sync per stage.

One :class:`GpuStage` owns two *slots* (double buffering). A slot has pinned host buffers, device
buffers and its own non-default stream, so batch k+1's upload overlaps batch k's compute:

    submit(batch k) → submit(batch k+1) → collect(batch k) → submit(batch k+2) → collect(batch k+1) ...

Per slot, in stream order: H2D (pinned → device) · preprocess kernel · engine (TensorRT or the torch
engine's CUDA graph) · mask + composite kernels · D2H (device → pinned). Each kernel is launched
once for the whole batch (the frame is the grid's z), so the host's work per batch does not grow
with its size. CUDA events bracket each stage; ``collect`` waits on the last event only and reads
the stage times from the events. NVTX ranges name the stages for Nsight Systems.

``emulate=True`` runs the same stage on the CPU — CPU tensors, the kernels through
:class:`realtime.compositor.emulator.HostKernels`, a CPU engine — where every step is synchronous: a
stream is nothing, an event is the host clock when it is recorded. Tests use it to run the stage's
own logic (slots, batches, partial batches, per-stream state, probabilities) without a GPU.

Example:
    >>> stage = GpuStage(engine, make_compositor("blur"), MaskSettings(), max_batch=16)  # doctest: +SKIP
    >>> ticket = stage.submit([frame_bgr])  # doctest: +SKIP
    >>> batch = stage.collect(ticket)  # images, probabilities, timings_ms, coverage  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from engines.backends.base import Engine
from engines.errors import BackendError, InputShapeError
from realtime.compositor.cuda import MovingAverage
from realtime.compositor.masks import MaskSettings
from realtime.compositor.modes import Compositor

log = logging.getLogger(__name__)

GPU_STAGES = ("h2d", "preprocess", "inference", "composite", "d2h")


class _CudaTimeline:
    """Streams, timing events, pinned host memory and NVTX ranges on one CUDA device."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch, self.device = torch, device

    def stream(self) -> Any:
        return self.torch.cuda.Stream(self.device)

    def on(self, stream: Any) -> Any:
        return self.torch.cuda.stream(stream)

    def event(self, timing: bool = True) -> Any:
        return self.torch.cuda.Event(enable_timing=timing)

    def pinned(self, tensor: Any) -> Any:
        return tensor.pin_memory()

    def range(self, name: str) -> Any:
        return self.torch.cuda.nvtx.range(name)


class _HostEvent:
    """An event of the synchronous host timeline: the host clock when it was recorded."""

    def __init__(self) -> None:
        self.at = 0.0

    def record(self, stream: Any = None) -> None:
        self.at = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _HostEvent) -> float:
        return (end.at - self.at) * 1000.0


class _HostStream:
    def wait_event(self, event: Any) -> None:
        pass  # everything before it has already run


class _HostTimeline:
    """The same calls on the CPU (``emulate=True``): work runs as it is issued, so there is nothing to order."""

    def stream(self) -> Any:
        return _HostStream()

    def on(self, stream: Any) -> Any:
        return contextlib.nullcontext()

    def event(self, timing: bool = True) -> Any:
        return _HostEvent()

    def pinned(self, tensor: Any) -> Any:
        return tensor

    def range(self, name: str) -> Any:
        return contextlib.nullcontext()


class GpuBatch(NamedTuple):
    """One collected batch."""

    images: list[np.ndarray]  # uint8 HxWx3 (HxWx4 for cutout/bgra)
    probabilities: list[np.ndarray] | None  # float32 HxW, when the stage keeps them
    timings_ms: dict[str, float]  # GPU time per frame for each of GPU_STAGES
    coverage: list[float]  # share of each frame that is masked (alpha > 0)


def _timeline_and_launcher(device: Any, emulate: bool) -> tuple[Any, Any]:
    """The timeline (CUDA streams and events, or the host's) and the kernel launcher (None: the GPU's own)."""
    if not emulate:
        return _CudaTimeline(device), None
    from realtime.compositor.emulator import HostKernels

    return _HostTimeline(), HostKernels()


@dataclass
class _Slot:
    stream: Any
    events: list[Any]
    kernels: Any  # the slot's CudaCompositor
    host_in: Any = None
    host_out: Any = None
    host_probability: Any = None
    device_in: Any = None
    model_in: Any = None
    device_out: Any = None
    device_probability: Any = None
    device_masked: Any = None  # masked pixels per frame, counted on the device
    host_masked: Any = None
    device_non_finite: Any = None  # NaN or infinite model outputs per frame, counted on the device
    host_non_finite: Any = None
    shape: tuple[int, int] | None = None  # the frame size its buffers are for
    count: int = 0
    busy: bool = False


class GpuStage:
    """Batched GPU processing of uint8 BGR frames of one size.

    Args:
        engine: an engine with ``infer_tensor`` on CUDA (``torch`` or ``tensorrt`` backend).
        compositor: the mode (its CPU definition is what the kernels reproduce).
        settings: mask post-processing.
        max_batch: frames per submit at most (several frames of one stream, or one frame of several streams).
        per_stream_state: True when the frames of a batch come from different streams (the moving
            average then keeps one state per stream: batch position k is stream k unless :meth:`submit` names
            the streams); False when they are consecutive frames of one stream.
        keep_probability: also download the frame-size probability (for ``--save-masks``).
        emulate: run on the CPU with the kernels emulated and a CPU engine (tests; see the module docstring).
    """

    def __init__(self, engine: Engine, compositor: Compositor, settings: MaskSettings, max_batch: int = 1,
                 per_stream_state: bool = False, keep_probability: bool = False, emulate: bool = False) -> None:
        import torch

        from realtime.compositor.cuda import CudaCompositor

        if not hasattr(engine, "infer_tensor") or not engine.device.startswith("cpu" if emulate else "cuda"):
            raise BackendError("an emulated GPU stage needs a torch engine on the CPU" if emulate else
                               "the GPU path needs a CUDA engine: --backend torch, torch-compile or tensorrt with "
                               "--device cuda")
        self.engine, self.compositor, self.settings = engine, compositor, settings
        prepare = getattr(engine, "prepare", None)
        if prepare is not None:  # torch engines: compile / capture a CUDA graph for the full batch size now
            prepare(max_batch)
        self.device = torch.device(engine.device)
        self.max_batch, self.keep_probability = max_batch, keep_probability
        self.timeline, launcher = _timeline_and_launcher(self.device, emulate)
        # Each slot has its own compositor (its scratch buffers let the slots overlap); a stream's moving average is
        # one, handed to whichever slot composites that stream's frame: successive composites are ordered by an event.
        self.averages: dict[Hashable, MovingAverage] = {}
        self.slots = []
        for _ in range(2):
            stream = self.timeline.stream()
            events = [self.timeline.event() for _ in range(len(GPU_STAGES) + 1)]
            kernels = CudaCompositor(compositor, settings, self.device.index or 0, stream, launcher=launcher)
            self.slots.append(_Slot(stream, events, kernels))
        self.per_stream_state = per_stream_state
        # The engine's static buffers (CUDA-graph input/output, TensorRT bindings) are shared by both slots:
        # inference runs one slot at a time, ordered by this event across the two streams.
        self._inference_free: Any = None
        self._composite_done: Any = None  # the previous batch's composite (it updated the moving averages)
        self._next = 0

    def _allocate(self, slot: _Slot, height: int, width: int) -> None:
        import torch

        n, (h, w) = self.max_batch, self.engine.spec.input_hw
        channels = self.compositor.output_channels
        slot.host_in = self.timeline.pinned(torch.empty((n, height, width, 3), dtype=torch.uint8))
        slot.host_out = self.timeline.pinned(torch.empty((n, height, width, channels), dtype=torch.uint8))
        slot.device_in = torch.empty((n, height, width, 3), dtype=torch.uint8, device=self.device)
        slot.model_in = torch.empty((n, 3, h, w), dtype=torch.float32, device=self.device)
        slot.device_out = torch.empty((n, height, width, channels), dtype=torch.uint8, device=self.device)
        slot.device_masked = torch.empty((n,), dtype=torch.int64, device=self.device)
        slot.host_masked = self.timeline.pinned(torch.empty((n,), dtype=torch.int64))
        slot.device_non_finite = torch.empty((n,), dtype=torch.int64, device=self.device)
        slot.host_non_finite = self.timeline.pinned(torch.empty((n,), dtype=torch.int64))
        if self.keep_probability:
            slot.device_probability = torch.empty((n, height, width), dtype=torch.float32, device=self.device)
            slot.host_probability = self.timeline.pinned(torch.empty((n, height, width), dtype=torch.float32))

    def _free_slot(self, height: int, width: int) -> _Slot:
        slot = self.slots[self._next]
        if slot.busy:
            raise BackendError("both GPU slots are in flight: collect() a ticket before submitting again")
        if slot.shape != (height, width):  # only this slot: the other may have a batch of the old size in flight
            self._allocate(slot, height, width)
            slot.shape = (height, width)
        return slot

    def input_buffers(self, height: int, width: int) -> list[np.ndarray]:
        """The next slot's pinned host frames (uint8 HxWx3) as NumPy arrays, to decode or write frames straight
        into: :meth:`submit` given these arrays copies nothing on the host.

        Example:
            >>> buffers = stage.input_buffers(1080, 1920)  # doctest: +SKIP
            >>> capture.read(buffers[0])  # OpenCV decodes into pinned memory  # doctest: +SKIP
            >>> ticket = stage.submit(buffers[:1])  # doctest: +SKIP
        """
        slot = self._free_slot(height, width)
        return [slot.host_in[i].numpy() for i in range(self.max_batch)]

    def submit(self, frames: list[np.ndarray], streams: Sequence[Hashable] | None = None,
               at: Sequence[float] | None = None) -> int:
        """Queue a batch (uint8 HxWx3 BGR frames of one size) on the next slot; returns its ticket.

        ``streams`` (with ``per_stream_state``): which stream each frame comes from — any hashable id, e.g. a camera
        index — so each keeps its own moving average whatever its position in the batch (default: its position).
        Consecutive frames of one stream may share a batch: frames are composited in batch order. ``at``: each
        frame's time in seconds on its stream's clock, which a background video plays on (default: a background
        frame a frame).
        """
        import torch

        if not 1 <= len(frames) <= self.max_batch:
            raise InputShapeError(f"a GPU batch holds 1..{self.max_batch} frames, got {len(frames)}")
        if streams is None:
            streams = range(len(frames)) if self.per_stream_state else [0] * len(frames)
        elif not self.per_stream_state or len(streams) != len(frames):
            raise InputShapeError(f"streams name the stream of each of the {len(frames)} frames, and need "
                                  "per_stream_state=True")
        if at is not None and len(at) != len(frames):
            raise InputShapeError(f"at gives the time of each of the {len(frames)} frames, got {len(at)}")
        height, width = frames[0].shape[:2]
        index = self._next
        slot = self._free_slot(height, width)
        n = len(frames)
        for i, frame in enumerate(frames):
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise InputShapeError(f"GPU batches take uint8 {height}x{width}x3 frames, got {frame.shape} {frame.dtype}")
            if frame.ctypes.data != slot.host_in[i].data_ptr():  # not already in place (see input_buffers)
                slot.host_in[i].copy_(torch.from_numpy(np.ascontiguousarray(frame)))  # all torch threads
        events, timeline = slot.events, self.timeline
        with timeline.on(slot.stream):
            events[0].record()
            with timeline.range("h2d"):
                slot.device_in[:n].copy_(slot.host_in[:n], non_blocking=True)
            events[1].record()
            with timeline.range("preprocess"):
                slot.kernels.preprocess(slot.device_in[:n], slot.model_in[:n], self.engine.spec)
            events[2].record()
            with timeline.range("inference"):
                if self._inference_free is not None:
                    slot.stream.wait_event(self._inference_free)
                raw = self.engine.infer_tensor(slot.model_in[:n])  # type: ignore[attr-defined]
                probability = self._to_probability(raw).clone()  # off the engine's static output before it is reused
                # NaN compares false with every threshold; counted here, such a batch fails in collect() (as
                # Engine.infer does on the CPU path) and, set to 1 meanwhile, never sticks in a moving average
                non_finite = ~torch.isfinite(probability)
                slot.device_non_finite[:n].copy_(torch.count_nonzero(non_finite.reshape(n, -1), dim=1))
                probability.masked_fill_(non_finite, 1.0)
                self._inference_free = timeline.event(timing=False)
                self._inference_free.record(slot.stream)
            events[3].record()
            with timeline.range("composite"):
                if self._composite_done is not None:
                    slot.stream.wait_event(self._composite_done)
                averages = [self.averages.setdefault(stream, MovingAverage()) for stream in streams]
                _, alpha = slot.kernels(slot.device_in[:n], probability[:, 0], slot.device_out[:n],
                                        slot.device_probability[:n] if self.keep_probability else None, averages,
                                        at, streams)
                slot.device_masked[:n].copy_(torch.count_nonzero(alpha.reshape(n, -1), dim=1))
                self._composite_done = timeline.event(timing=False)
                self._composite_done.record(slot.stream)
            events[4].record()
            with timeline.range("d2h"):
                slot.host_out[:n].copy_(slot.device_out[:n], non_blocking=True)
                slot.host_masked[:n].copy_(slot.device_masked[:n], non_blocking=True)
                slot.host_non_finite[:n].copy_(slot.device_non_finite[:n], non_blocking=True)
                if self.keep_probability:
                    slot.host_probability[:n].copy_(slot.device_probability[:n], non_blocking=True)
            events[5].record()
        slot.count, slot.busy = n, True
        self._next = 1 - index
        return index

    def _to_probability(self, raw: Any) -> Any:
        import torch

        kind = self.engine.spec.output
        raw = raw.float()
        if kind == "probability":
            return raw
        if kind == "logit":
            return torch.sigmoid(raw)
        soft = torch.softmax(raw, dim=1)
        return soft[:, list(self.engine.spec.classes)].sum(dim=1, keepdim=True)

    def collect(self, ticket: int, copy: bool = True) -> GpuBatch:
        """Wait for a submitted batch; returns its images, probabilities (when kept), per-frame stage ms and the
        share of each frame that is masked. Raises :class:`~engines.errors.InferenceError` when the engine gave
        NaN or infinite values for a frame of it (the pipeline then writes the batch fully masked, as on the CPU
        path; the moving average holds 1 where the engine failed, and forgets it at its rate).

        ``copy=False`` returns views of the slot's pinned memory instead of copies: valid until the next
        :meth:`submit` after this one (the slot is then reused).
        """
        slot = self.slots[ticket]
        if not slot.busy:
            raise BackendError(f"ticket {ticket} has nothing in flight")
        slot.busy = False  # free again even if waiting for it fails (the next batch may still succeed)
        slot.events[-1].synchronize()
        n = slot.count
        if slot.host_non_finite[:n].any():
            raise self.engine.non_finite_error()
        timings = {stage: slot.events[k].elapsed_time(slot.events[k + 1]) / n for k, stage in enumerate(GPU_STAGES)}
        images = [slot.host_out[i].numpy() for i in range(n)]
        probabilities = [slot.host_probability[i].numpy() for i in range(n)] if self.keep_probability else None
        if copy:
            images = [image.copy() for image in images]
            probabilities = [p.copy() for p in probabilities] if probabilities is not None else None
        pixels = slot.host_out.shape[1] * slot.host_out.shape[2]
        return GpuBatch(images, probabilities, timings, [int(m) / pixels for m in slot.host_masked[:n].tolist()])


class GpuComposite:
    """The composite alone on the GPU, for frames whose mask the host made (the inference strategies): the frame
    and its alpha go up, the masked frame comes down — the mode's CPU reference, bit for bit in the emulation.

    Args:
        compositor: the mode.
        device: the CUDA device (``"cuda"``, ``"cuda:N"``).
        emulate: run on the CPU with the kernels emulated (tests; see the module docstring).

    Example:
        >>> composite = GpuComposite(make_compositor("blur"), "cuda")  # doctest: +SKIP
        >>> masked = composite(frame_bgr, alpha)  # uint8 HxWx3 and float32 HxW in, uint8 HxWx3 out  # doctest: +SKIP
    """

    def __init__(self, compositor: Compositor, device: str = "cuda", emulate: bool = False) -> None:
        import torch

        from realtime.compositor.cuda import CudaCompositor

        self.device = torch.device("cpu" if emulate else device)
        self.timeline, launcher = _timeline_and_launcher(self.device, emulate)
        self.stream = self.timeline.stream()
        self.kernels = CudaCompositor(compositor, MaskSettings(), self.device.index or 0, self.stream, launcher=launcher)
        self.channels = compositor.output_channels
        self._buffers: dict[str, tuple[Any, Any]] = {}

    def _pair(self, name: str, shape: tuple[int, ...], dtype: Any) -> tuple[Any, Any]:
        """A pinned host buffer and its device twin, kept while the frame size stays."""
        import torch

        if name not in self._buffers or tuple(self._buffers[name][0].shape) != shape:
            host = self.timeline.pinned(torch.empty(shape, dtype=dtype))
            self._buffers[name] = host, torch.empty(shape, dtype=dtype, device=self.device)
        return self._buffers[name]

    def __call__(self, frame: np.ndarray, alpha: np.ndarray, at: float | None = None, stream: Hashable = 0) -> np.ndarray:
        import torch

        height, width = frame.shape[:2]
        if frame.dtype != np.uint8 or frame.shape != (height, width, 3) or alpha.shape != (height, width):
            raise InputShapeError(f"GPU composite takes a uint8 HxWx3 frame and its HxW alpha, got {frame.shape} "
                                  f"{frame.dtype} and {alpha.shape}")
        host_frame, device_frame = self._pair("frame", (height, width, 3), torch.uint8)
        host_alpha, device_alpha = self._pair("alpha", (height, width), torch.float32)
        host_out, device_out = self._pair("out", (height, width, self.channels), torch.uint8)
        host_frame.copy_(torch.from_numpy(np.ascontiguousarray(frame)))
        host_alpha.copy_(torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32)))
        with self.timeline.on(self.stream):
            device_frame.copy_(host_frame, non_blocking=True)
            device_alpha.copy_(host_alpha, non_blocking=True)
            self.kernels.composite(device_frame, device_alpha, device_out, None if at is None else [at], [stream])
            host_out.copy_(device_out, non_blocking=True)
            done = self.timeline.event(timing=False)
            done.record(self.stream)
        done.synchronize()
        return host_out.numpy().copy()


def gpu_composite_or_none(compositor: Compositor, device: str, emulate: bool = False) -> GpuComposite | None:
    """A :class:`GpuComposite`, or None where it cannot start here (no cuda-python, no such device): the CPU
    reference composites then, said once.

    Example:
        >>> gpu_composite_or_none(make_compositor("blur"), "cuda:7") is None  # no GPU here  # doctest: +SKIP
        True
    """
    try:
        return GpuComposite(compositor, device, emulate=emulate)
    except (BackendError, ImportError, RuntimeError) as exc:
        log.warning("compositing on the CPU: the GPU composite is not available here (%s)", exc)
        return None
