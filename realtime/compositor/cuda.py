"""The CUDA compositor: ``kernels.cu`` compiled with NVRTC (cuda-python's ``cuda.core``), launched on torch tensors.

Kernels are compiled at first use for the GPU's architecture; the cubin is cached on disk under a
key of source hash + architecture + NVRTC version. They run on the caller's CUDA stream (a
``torch.cuda.Stream`` is accepted as is) and read and write torch CUDA tensors in place through
their device pointers — no copies. Each kernel takes a whole batch of frames of one size in one
launch (the frame index is the grid's z), so a batch of 16 costs the host the launches of one frame.

Without a GPU, :func:`compile_kernels` still compiles (tests do it for sm_80, sm_86, sm_89, sm_90).

Example:
    >>> cubin = compile_kernels("sm_90")  # doctest: +SKIP
    >>> compositor = CudaCompositor(make_compositor("blur"), MaskSettings(dilate_px=4))  # doctest: +SKIP
    >>> out, alpha = compositor(frame_u8_hwc_cuda, probability_hw_cuda)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Hashable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from engines import zoo
from engines.errors import BackendError, InputShapeError
from realtime.compositor.masks import MaskSettings, dilation_halfwidths
from realtime.compositor.modes import (
    BlurCompositor,
    Compositor,
    CutoutCompositor,
    FillCompositor,
    MaskCompositor,
    OverlayCompositor,
    PixelateCompositor,
    ReplaceCompositor,
)

SOURCE_PATH = Path(__file__).with_name("kernels.cu")
KERNEL_NAMES = (
    "preprocess", "mask_from_probability", "row_prefix", "dilate", "feather_h", "feather_v", "box_h_u16", "box_h_i32",
    "box_v_u16", "box_v_i32", "composite_image", "composite_color", "pixelate_means", "composite_pixelate", "cutout_bgra",
    "mask_grey", "resize_u8",
)
ARCHITECTURES = ("sm_80", "sm_86", "sm_89", "sm_90")
BLUR_SEGMENT = 32  # pixels of a row (column) one blur thread slides its window along


NEEDS_CUDA_PYTHON = "the CUDA compositor needs cuda-python and NVRTC: pip install 'realtime-masking[cuda]'"


def _nvrtc_version() -> str:
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        raise BackendError(NEEDS_CUDA_PYTHON) from exc

    _status, major, minor = nvrtc.nvrtcVersion()
    return f"{major}.{minor}"


def _compile(source: str, arch: str, logs: io.StringIO | None = None, **options: Any) -> bytes:
    """``source`` (of kernels.cu) compiled by NVRTC to a cubin for ``arch`` (``options``: more ProgramOptions)."""
    try:
        from cuda.core import Program, ProgramOptions
    except ImportError as exc:
        raise BackendError(NEEDS_CUDA_PYTHON) from exc
    program = Program(source, code_type="c++",
                      options=ProgramOptions(arch=arch, std="c++17", use_fast_math=False, **options))
    try:
        return bytes(program.compile("cubin", logs=logs).code)
    except Exception as exc:
        raise BackendError(f"kernels.cu does not compile for {arch}: {exc}") from exc


def compile_kernels(arch: str, cache: str | Path | None = None) -> bytes:
    """Compile ``kernels.cu`` to a cubin for ``arch`` (e.g. ``"sm_90"``), cached on disk.

    Raises:
        BackendError: cuda-python/NVRTC missing, or the source does not compile (with NVRTC's log).
    """
    source = SOURCE_PATH.read_text()
    key = hashlib.sha256(f"{source}\0{arch}\0{_nvrtc_version()}".encode()).hexdigest()[:24]
    path = zoo.cache_dir(cache) / "cubin" / f"compositor-{arch}-{key}.cubin"
    if path.is_file():
        return path.read_bytes()
    cubin = _compile(source, arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(cubin)
    partial.replace(path)
    return cubin


def kernel_resources(arch: str) -> dict[str, dict[str, int]]:
    """What each kernel of ``kernels.cu`` takes a thread on ``arch``, as ptxas reports it through NVRTC.

    Registers bound how many threads an SM keeps in flight; a stack frame or spills put per-thread data
    in (slow, off-chip) local memory. Compiled afresh (not cached): the report is a by-product of the compile.

    Raises:
        BackendError: cuda-python/NVRTC missing, or the source does not compile.

    Example:
        >>> kernel_resources("sm_90")["composite_image"]["spill_stores"]
        0
    """
    log = io.StringIO()
    _compile(SOURCE_PATH.read_text(), arch, logs=log, ptxas_options="-v")
    report = re.findall(r"Function properties for (\w+)\s+ptxas\s+\.\s+(\d+) bytes stack frame, (\d+) bytes spill "
                        r"stores, (\d+) bytes spill loads\s+ptxas info\s+: Used (\d+) registers", log.getvalue())
    return {name: {"registers": int(registers), "stack_bytes": int(stack), "spill_stores": int(stores),
                   "spill_loads": int(loads)} for name, stack, stores, loads, registers in report}


@cache
def _module(device_id: int) -> Any:
    from cuda.core import Device, ObjectCode

    major, minor = Device(device_id).compute_capability
    return ObjectCode.from_cubin(compile_kernels(f"sm_{major}{minor}"))


def _grid2d(width: int, height: int, frames: int = 1) -> Any:
    from cuda.core import LaunchConfig

    return LaunchConfig(grid=((width + 31) // 32, (height + 7) // 8, frames), block=(32, 8, 1))


def _grid1d(count: int, frames: int = 1) -> Any:
    from cuda.core import LaunchConfig

    return LaunchConfig(grid=((count + 255) // 256, 1, frames), block=(256, 1, 1))


class DeviceKernels:
    """The compiled kernels on one GPU, launched on one CUDA stream.

    Args:
        device: CUDA device index.
        stream: a ``torch.cuda.Stream`` (default: torch's current stream on that device).
    """

    def __init__(self, device: int = 0, stream: Any = None) -> None:
        import torch
        from cuda.core import Device

        self.torch_device = torch.device("cuda", device)
        self.torch_stream = stream or torch.cuda.current_stream(self.torch_device)
        gpu = Device(device)
        gpu.set_current()  # cuda.core: "Device must be initialized" (in this thread) before create_stream
        self.stream = gpu.create_stream(self.torch_stream)
        module = _module(device)
        self.kernels = {name: module.get_kernel(name) for name in KERNEL_NAMES}

    def __call__(self, name: str, config: Any, *args: Any) -> None:
        from cuda.core import launch

        launch(self.stream, config, self.kernels[name], *args)


class MovingAverage:
    """One stream's moving average of the probability, on the device. A compositor keeps its own, or is handed
    each frame's stream's on each call (the GPU stage: one compositor per slot, one average per stream)."""

    def __init__(self) -> None:
        self.tensor: Any = None


class CudaCompositor:
    """Mask post-processing and one masking mode on the GPU, equal to the CPU reference within ±1.

    Every call takes one frame (``(H, W, 3)``, probability ``(h, w)``) or a batch of frames of one size
    (``(n, H, W, 3)``, ``(n, h, w)``): a batch is one launch per kernel, whatever ``n``.

    Args:
        mode: the CPU compositor whose definition (and options) to reproduce.
        settings: mask post-processing.
        device: CUDA device index.
        stream: a ``torch.cuda.Stream`` (default: torch's current stream).
        launcher: what runs the kernels (default: :class:`DeviceKernels` on ``device`` and ``stream``;
            :class:`realtime.compositor.emulator.HostKernels` runs them on the CPU, on CPU tensors).
    """

    def __init__(self, mode: Compositor, settings: MaskSettings, device: int = 0, stream: Any = None,
                 launcher: Any = None) -> None:
        import torch

        self.mode, self.settings = mode, settings
        self._launch = launcher or DeviceKernels(device, stream)
        self.torch_device = self._launch.torch_device
        halfwidths = dilation_halfwidths(settings)
        self.halfwidths = None if halfwidths is None else torch.from_numpy(halfwidths).to(self.torch_device)
        self.moving_average = MovingAverage()
        self._buffers: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._background: Any = None
        self._states_in_use: Any = None

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """Scratch of ``shape`` = (frames, ...): kept for the most frames asked so far, handed out as a slice."""
        import torch

        key = (name, shape[1:])
        if key not in self._buffers or self._buffers[key].shape[0] < shape[0]:
            self._buffers[key] = torch.empty(shape, dtype=dtype, device=self.torch_device)
        return self._buffers[key][:shape[0]]

    def _states(self, averages: Sequence[MovingAverage], height: int, width: int) -> Any:
        """The moving averages of a batch's frames for ``mask_from_probability``: each frame's average's address,
        then whether it starts afresh there (new stream, or a new frame size), as an int64 device tensor."""
        import torch

        addresses, fresh, seen = [], [], set()
        for average in averages:
            starts = False
            if id(average) not in seen:
                seen.add(id(average))
                if average.tensor is None or average.tensor.shape != (height, width):
                    average.tensor = torch.empty((height, width), dtype=torch.float32, device=self.torch_device)
                    starts = True
            addresses.append(average.tensor.data_ptr())
            fresh.append(int(starts))
        states = torch.tensor(addresses + fresh, dtype=torch.int64)
        if self.torch_device.type == "cuda":  # pinned, then queued on the kernels' stream (torch keeps the pinned
            with torch.cuda.stream(self._launch.torch_stream):  # block until the copy has run)
                states = states.pin_memory().to(self.torch_device, non_blocking=True)
        self._states_in_use = states  # alive until the next call has queued its own
        return states

    def alpha(self, probability: Any, frame_hw: tuple[int, int], probability_out: Any = None,
              averages: Sequence[MovingAverage] | None = None) -> Any:
        """Model probability float32 CUDA tensor (h, w), or a batch (n, h, w) -> alpha (H, W), or (n, H, W):
        float32 when feathered, else the uint8 0/1 mask itself (same values; the composites read either).

        ``averages``: each frame's stream's moving average (default: this compositor's own for every frame —
        one stream, frames in order); ``probability_out`` receives the frame-size probabilities.
        """
        import torch

        height, width = frame_hw
        h, w = probability.shape[-2:]
        batched = probability.dim() >= 3
        probability = probability.reshape(-1, h, w).contiguous()
        n = probability.shape[0]
        s = self.settings
        binary = self._buffer("binary", (n, height, width), torch.uint8)
        states = 0
        if s.ema_alpha < 1.0:
            averages = [self.moving_average] * n if averages is None else averages
            if len(averages) != n:
                raise InputShapeError(f"{len(averages)} moving averages for {n} frames")
            states = self._states(averages, height, width).data_ptr()
        hh, ww, frames = np.int32(height), np.int32(width), np.int32(n)
        self._launch("mask_from_probability", _grid2d(width, height), probability.data_ptr(), np.int32(h), np.int32(w),
                     hh, ww, frames, states, np.float32(s.ema_alpha), np.int32(s.fail_closed), np.float32(s.threshold),
                     np.int32(s.target == "background"), binary.data_ptr(),
                     0 if probability_out is None else probability_out.data_ptr())
        if self.halfwidths is not None:
            prefix = self._buffer("prefix", (n, height, width + 1), torch.int32)
            dilated = self._buffer("dilated", (n, height, width), torch.uint8)
            self._launch("row_prefix", _grid1d(height, n), binary.data_ptr(), hh, ww, prefix.data_ptr())
            self._launch("dilate", _grid2d(width, height, n), prefix.data_ptr(), hh, ww, self.halfwidths.data_ptr(),
                         np.int32(len(self.halfwidths) // 2), dilated.data_ptr())
            binary = dilated
        alpha = binary
        if s.feather_px:
            alpha = self._buffer("alpha", (n, height, width), torch.float32)
            tmp = self._buffer("feather", (n, height, width), torch.float32)
            self._launch("feather_h", _grid2d(width, height, n), binary.data_ptr(), hh, ww, np.int32(s.feather_px),
                         tmp.data_ptr())
            self._launch("feather_v", _grid2d(width, height, n), tmp.data_ptr(), hh, ww, np.int32(s.feather_px),
                         alpha.data_ptr())
        return alpha if batched else alpha[0]

    def _blur_composite(self, frames: Any, radius: int, alpha: Any, out: Any) -> None:
        """Two box passes; the last vertical pass blends into ``out`` (the blurred frames are never written)."""
        import torch

        n, height, width = frames.shape[:3]
        wide = (2 * radius + 1) * 255 > np.iinfo(np.uint16).max
        kind = "i32" if wide else "u16"
        sums = self._buffer(f"sums_{kind}", (n, height, width, 3), torch.int32 if wide else torch.uint16)
        once = self._buffer("blur1", (n, height, width, 3), torch.uint8)
        rows = _grid2d(-(-width // BLUR_SEGMENT), height, n)
        columns = _grid2d(width, -(-height // BLUR_SEGMENT), n)
        hh, ww, r, segment = np.int32(height), np.int32(width), np.int32(radius), np.int32(BLUR_SEGMENT)
        alpha_u8 = np.int32(alpha.dtype == torch.uint8)
        self._launch(f"box_h_{kind}", rows, frames.data_ptr(), hh, ww, r, segment, sums.data_ptr())
        self._launch(f"box_v_{kind}", columns, sums.data_ptr(), hh, ww, r, segment, once.data_ptr(), np.int32(0), 0,
                     0, np.int32(0))
        self._launch(f"box_h_{kind}", rows, once.data_ptr(), hh, ww, r, segment, sums.data_ptr())
        self._launch(f"box_v_{kind}", columns, sums.data_ptr(), hh, ww, r, segment, out.data_ptr(), np.int32(1),
                     frames.data_ptr(), alpha.data_ptr(), alpha_u8)

    def _backgrounds_for(self, n: int, height: int, width: int, at: Sequence[float] | None,
                         streams: Sequence[Hashable] | None) -> tuple[Any, bool]:
        """The replace mode's background resized to the frame size: one image for the whole batch, or a frame of
        the background video for each frame (then True), at each frame's time on its stream (see
        :meth:`ReplaceCompositor.composite`)."""
        import torch

        assert isinstance(self.mode, ReplaceCompositor)
        background = self.mode.background
        if not background.is_video:
            if self._background is None or self._background.shape[:2] != (height, width):
                self._background = torch.empty((height, width, 3), dtype=torch.uint8, device=self.torch_device)
                self._resize_into(background.frame_bgr(), self._background)
            return self._background, False
        backgrounds = self._buffer("backgrounds", (n, height, width, 3), torch.uint8)
        for k in range(n):
            self._resize_into(background.frame_bgr(at[k] if at is not None else None,
                                                   streams[k] if streams is not None else 0), backgrounds[k])
        return backgrounds, True

    def _resize_into(self, source: Any, out: Any) -> None:
        import torch

        src = torch.from_numpy(np.ascontiguousarray(source)).to(self.torch_device, non_blocking=True)
        height, width = out.shape[:2]
        self._launch("resize_u8", _grid2d(width, height), src.data_ptr(), np.int32(src.shape[0]), np.int32(src.shape[1]),
                     out.data_ptr(), np.int32(height), np.int32(width))

    def __call__(self, frame: Any, probability: Any, out: Any = None, probability_out: Any = None,
                 averages: Sequence[MovingAverage] | None = None, at: Sequence[float] | None = None,
                 streams: Sequence[Hashable] | None = None) -> tuple[Any, Any]:
        """Composite one frame, uint8 (H, W, 3) CUDA tensor + model probability (h, w), or a batch
        ((n, H, W, 3) + (n, h, w)) -> (output, alpha).

        ``alpha`` is float32 (H, W) when feathered, else the uint8 0/1 mask (see :meth:`alpha`), (n, H, W)
        for a batch. ``out`` (optional) receives the result: (H, W, 3), or (H, W, 4) for cutout/bgra (with a
        leading n for a batch); ``probability_out`` the frame-size probabilities; ``averages`` each frame's
        stream's moving average (default: this compositor's own, the frames one stream in order); ``at`` and
        ``streams`` each frame's time on its stream's clock and its stream (a background video plays on them).
        """
        if frame.dim() != probability.dim() + 1:
            raise InputShapeError(f"frames {tuple(frame.shape)} and probabilities {tuple(probability.shape)}: one "
                                  "(h, w) probability a (H, W, 3) frame")
        frame = frame.contiguous()
        alpha = self.alpha(probability, frame.shape[-3:-1], probability_out, averages)
        return self.composite(frame, alpha, out, at, streams), alpha

    def composite(self, frame: Any, alpha: Any, out: Any = None, at: Sequence[float] | None = None,
                  streams: Sequence[Hashable] | None = None) -> Any:
        """Composite with a ready alpha: uint8 (H, W, 3) + float32 alpha or uint8 0/1 mask (H, W), all on the
        device, or a batch of each ((n, H, W, 3) + (n, H, W)) -> the output (H, W, 3), or (H, W, 4) for
        cutout/bgra (with a leading n for a batch), written into ``out`` if given. ``at``/``streams``: each
        frame's time and stream, for a background video (see :meth:`ReplaceCompositor.composite`)."""
        import torch

        batched = frame.dim() == 4
        frames = frame.reshape(-1, *frame.shape[-3:]).contiguous()
        n, height, width = frames.shape[:3]
        if (tuple(alpha.shape) != ((n, height, width) if batched else (height, width))
                or alpha.dtype not in (torch.float32, torch.uint8)):
            raise InputShapeError(f"alpha must be float32 or uint8 {(n, height, width) if batched else (height, width)}, "
                                  f"got {tuple(alpha.shape)} {alpha.dtype}")
        alpha = alpha.contiguous()
        mode = self.mode
        channels = 4 if isinstance(mode, CutoutCompositor) and mode.format == "bgra" else 3
        if out is None:
            out = torch.empty((n, height, width, channels) if batched else (height, width, channels), dtype=torch.uint8,
                              device=self.torch_device)
        f, o, hh, ww, pixels = frames.data_ptr(), out.data_ptr(), np.int32(height), np.int32(width), height * width
        a = (alpha.data_ptr(), np.int32(alpha.dtype == torch.uint8))  # the alpha and whether it is the uint8 mask
        if isinstance(mode, BlurCompositor):
            self._blur_composite(frames, mode.strength, alpha, out)
        elif isinstance(mode, PixelateCompositor):
            bw, bh = -(-width // mode.block), -(-height // mode.block)
            means = self._buffer("means", (n, bh, bw, 3), torch.uint8)
            from cuda.core import LaunchConfig

            config = LaunchConfig(grid=((bw + 15) // 16, (bh + 15) // 16, 3 * n), block=(16, 16, 1))
            self._launch("pixelate_means", config, f, hh, ww, np.int32(mode.block), means.data_ptr(), np.int32(bw), np.int32(bh))
            self._launch("composite_pixelate", _grid1d(pixels, n), f, means.data_ptr(), np.int32(bw), np.int32(mode.block),
                         *a, hh, ww, o)
        elif isinstance(mode, FillCompositor | OverlayCompositor) or (isinstance(mode, CutoutCompositor) and channels == 3):
            color = (0, 255, 0) if isinstance(mode, CutoutCompositor) else mode.color
            opacity = mode.opacity if isinstance(mode, OverlayCompositor) else 1.0
            self._launch("composite_color", _grid1d(pixels, n), f, *a, hh, ww, *(np.float32(c) for c in color),
                         np.float32(opacity), o)
        elif isinstance(mode, ReplaceCompositor):
            backgrounds, per_frame = self._backgrounds_for(n, height, width, at, streams)
            self._launch("composite_image", _grid1d(pixels, n), f, backgrounds.data_ptr(), np.int32(per_frame), *a, hh, ww, o)
        elif isinstance(mode, CutoutCompositor):
            self._launch("cutout_bgra", _grid1d(pixels, n), f, *a, hh, ww, o)
        elif isinstance(mode, MaskCompositor):
            self._launch("mask_grey", _grid1d(pixels, n), *a, hh, ww, o)
        else:  # pragma: no cover - every mode is handled above
            raise BackendError(f"mode {mode.name} has no CUDA kernel")
        return out

    def preprocess(self, frame: Any, out: Any, spec: Any, frame_color: str = "bgr") -> Any:
        """One uint8 (H, W, 3) CUDA frame -> model input (3, h, w) float32 written into ``out``; or a batch,
        (n, H, W, 3) -> (n, 3, h, w)."""
        h, w = spec.input_hw
        frames = frame.reshape(-1, *frame.shape[-3:]).contiguous()
        n, height, width = frames.shape[:3]
        if out.numel() != n * 3 * h * w or not out.is_contiguous():
            raise InputShapeError(f"preprocess writes {n}x3x{h}x{w} contiguous float32, got {tuple(out.shape)}")
        self._launch("preprocess", _grid2d(w, h, n), frames.data_ptr(), np.int32(height), np.int32(width),
                     out.data_ptr(), np.int32(h), np.int32(w), np.int32(spec.resize == "mediapipe"),
                     np.int32(frame_color != spec.color), *(np.float32(m) for m in spec.mean),
                     *(np.float32(s) for s in spec.std))
        return out
