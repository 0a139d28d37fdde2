"""Rebuild a TFLite segmentation graph as a ``torch.nn.Module`` with its own weights.

The flatbuffer is read with the ``tflite`` package. Activations are kept NCHW
inside the module (TFLite is NHWC): weights are permuted once at conversion,
and the module takes ``[N, 3, H, W]`` float input and returns ``[N, C, H, W]``.
Covered operators: CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, HARD_SWISH, RELU,
RELU6, AVERAGE_POOL_2D, MEAN, LOGISTIC, MUL, ADD, RESIZE_BILINEAR and
MediaPipe's custom ``Convolution2DTransposeBias``. Anything else raises
:class:`~engines.errors.UnsupportedOpError` naming the op and the model.

Example:
    >>> from engines.converters.tflite_to_torch import convert_tflite  # doctest: +SKIP
    >>> module = convert_tflite("selfie_segmentation.tflite")  # doctest: +SKIP
    >>> module(torch.rand(1, 3, 256, 256)).shape  # doctest: +SKIP
    torch.Size([1, 1, 256, 256])
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.errors import ModelFormatError, UnsupportedOpError

try:
    import tflite
except ImportError as exc:  # pragma: no cover - declared dependency
    raise ImportError("the 'tflite' package is required: pip install tflite") from exc

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_NUMPY_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT64: np.int64,
}
_PADDING_SAME, _PADDING_VALID = 0, 1
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    constant: np.ndarray | None


def _activation(code: int, op_name: str, model: str) -> Callable[[torch.Tensor], torch.Tensor]:
    table: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
        0: lambda x: x,
        1: F.relu,
        2: lambda x: torch.clamp(x, -1.0, 1.0),
        3: F.relu6,
        4: torch.tanh,
    }
    if code not in table:
        raise UnsupportedOpError(f"{model}: {op_name} with fused activation code {code} is not supported")
    return table[code]


def _same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite SAME padding (before, after) along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _to_nchw_constant(value: np.ndarray) -> torch.Tensor:
    array = value.astype(np.float32)
    if array.ndim == 4:
        array = array.transpose(0, 3, 1, 2)
    elif array.ndim == 1:
        array = array.reshape(1, -1, 1, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


class _Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D with explicit (possibly asymmetric) TFLite padding."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 dilation: tuple[int, int], pad_hw: tuple[int, int, int, int], groups: int,
                 activation: Callable[[torch.Tensor], torch.Tensor], activation_code: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.activation_code = activation_code
        self.stride, self.dilation, self.groups, self.activation = stride, dilation, groups, activation
        top, bottom, left, right = pad_hw
        self.symmetric = top == bottom and left == right
        self.padding = (top, left) if self.symmetric else (0, 0)
        self.pad = (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            x = F.pad(x, self.pad)
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return self.activation(x)


class _TransposeConvBias(nn.Module):
    """MediaPipe's Convolution2DTransposeBias: transposed convolution plus bias, TFLite padding."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: tuple[int, int],
                 crop_hw: tuple[int, int, int, int], needs_crop: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.stride = stride
        self.crop = crop_hw  # top, height, left, width
        self.needs_crop = needs_crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        if self.needs_crop:
            top, height, left, width = self.crop
            y = y[:, :, top:top + height, left:left + width]
        return y


class _Elementwise(nn.Module):
    """ADD / MUL with NCHW broadcasting, optional constant operand and fused activation."""

    def __init__(self, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 constant: torch.Tensor | None, constant_first: bool,
                 activation: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.op, self.activation, self.constant_first = op, activation, constant_first
        self.register_buffer("constant", constant, persistent=True)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        constant = cast(torch.Tensor | None, self.constant)
        if constant is not None:
            a, b = (constant, a) if self.constant_first else (a, constant)
        assert b is not None
        return self.activation(self.op(a, b))


class _Lambda(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _ResizeBilinear(nn.Module):
    """RESIZE_BILINEAR to a fixed size (half-pixel centers or align_corners)."""

    def __init__(self, size: tuple[int, int], align_corners: bool) -> None:
        super().__init__()
        self.size, self.align_corners = size, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


def _conv_before_resize(nodes: list[tuple[nn.Module, list[int], int]]) -> list[tuple[nn.Module, list[int], int]]:
    """Move a 1x1 convolution (no activation) that only consumes a bilinear resize in front of it.

    Bilinear weights sum to 1, so ``conv1x1(resize(x)) == resize(conv1x1(x))`` (bias included) while
    the convolution then runs on 4x fewer pixels and the resize on the (usually fewer) output channels.
    """
    consumers: dict[int, int] = {}
    for _, inputs, _ in nodes:
        for i in inputs:
            consumers[i] = consumers.get(i, 0) + 1
    out = list(nodes)
    for k in range(len(out) - 1):
        resize, (conv, conv_inputs, conv_output) = out[k], out[k + 1]
        if (isinstance(resize[0], _ResizeBilinear) and isinstance(conv, _Conv) and conv_inputs == [resize[2]]
                and consumers.get(resize[2]) == 1 and conv.weight.shape[2:] == (1, 1) and conv.stride == (1, 1)
                and conv.groups == 1 and conv.pad == (0, 0, 0, 0) and conv.activation_code == 0):
            out[k] = (conv, resize[1], resize[2])
            out[k + 1] = (resize[0], [resize[2]], conv_output)
    return out


class TFLiteModule(nn.Module):
    """A TFLite graph replayed op by op on NCHW tensors.

    Attributes:
        input_hw: the model's input (height, width).
        output_channels: channels of the single output.
        source: the file the graph came from.
    """

    def __init__(self, nodes: list[tuple[nn.Module, list[int], int]], input_id: int, output_id: int,
                 input_hw: tuple[int, int], output_channels: int, source: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(node for node, _, _ in nodes)
        self.wiring = [(inputs, output) for _, inputs, output in nodes]
        self.input_id, self.output_id = input_id, output_id
        self.input_hw, self.output_channels, self.source = input_hw, output_channels, source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, torch.Tensor] = {self.input_id: x}
        for layer, (inputs, output) in zip(self.layers, self.wiring, strict=True):
            values[output] = layer(*(values[i] for i in inputs))
        return values[self.output_id]


class _GraphReader:
    """Walks one TFLite subgraph and builds the torch nodes."""

    def __init__(self, data: bytes, model_name: str) -> None:
        self.model_name = model_name
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelFormatError(
                f"{model_name} is not a TFLite flatbuffer (no 'TFL3' identifier); "
                "give a .tflite file, or re-fetch it with `realtime-mask models fetch NAME --force`"
            )
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise ModelFormatError(f"{model_name} has {self.model.SubgraphsLength()} subgraphs, expected 1")
        self.graph = self.model.Subgraphs(0)
        self.op_codes = [self._op_code_name(i) for i in range(self.model.OperatorCodesLength())]
        self.tensors = [self._read_tensor(i) for i in range(self.graph.TensorsLength())]

    def _op_code_name(self, index: int) -> str:
        code = self.model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == tflite.BuiltinOperator.CUSTOM:
            return (code.CustomCode() or b"CUSTOM").decode()
        return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")

    def _read_tensor(self, index: int) -> _Tensor:
        tensor = self.graph.Tensors(index)
        shape = tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        buffer = self.model.Buffers(tensor.Buffer())
        constant = None
        if buffer is not None and buffer.DataLength():
            dtype = _NUMPY_DTYPES.get(tensor.Type())
            if dtype is None:
                raise ModelFormatError(f"{self.model_name}: constant tensor of TFLite type {tensor.Type()}")
            constant = buffer.DataAsNumpy().view(dtype).reshape(shape)
            constant = self._dequantize_params(tensor, constant)
        return _Tensor(tensor.Name().decode(errors="replace"), shape, constant)

    @staticmethod
    def _dequantize_params(tensor: tflite.Tensor, value: np.ndarray) -> np.ndarray:
        quant = tensor.Quantization()
        if quant is None or quant.ScaleLength() == 0 or value.dtype.kind != "i" or value.dtype == np.int32:
            return value
        scale = quant.ScaleAsNumpy().astype(np.float32)
        zero = quant.ZeroPointAsNumpy().astype(np.float32) if quant.ZeroPointLength() else np.zeros_like(scale)
        if scale.size > 1:
            axis_shape = [1] * value.ndim
            axis_shape[quant.QuantizedDimension()] = -1
            scale, zero = scale.reshape(axis_shape), zero.reshape(axis_shape)
        return (value.astype(np.float32) - zero) * scale

    def constant(self, index: int, what: str, op_name: str) -> np.ndarray:
        value = self.tensors[index].constant
        if value is None:
            raise UnsupportedOpError(f"{self.model_name}: {op_name} with a non-constant {what} is not supported")
        return value

    def build(self) -> TFLiteModule:
        graph = self.graph
        if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
            raise ModelFormatError(
                f"{self.model_name}: expected 1 input and 1 output, got {graph.InputsLength()} and {graph.OutputsLength()}"
            )
        input_id, output_id = int(graph.Inputs(0)), int(graph.Outputs(0))
        in_shape, out_shape = self.tensors[input_id].shape, self.tensors[output_id].shape
        if len(in_shape) != 4 or in_shape[3] != 3:
            raise ModelFormatError(f"{self.model_name}: input must be NHWC with 3 channels, got shape {in_shape}")
        if len(out_shape) != 4:
            raise ModelFormatError(f"{self.model_name}: output must be rank 4 NHWC, got shape {out_shape}")
        nodes: list[tuple[nn.Module, list[int], int]] = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            name = self.op_codes[op.OpcodeIndex()]
            inputs = [int(x) for x in op.InputsAsNumpy()]
            output = int(op.Outputs(0))
            builder = getattr(self, f"_op_{name.lower()}", None)
            if builder is None:
                raise UnsupportedOpError(
                    f"{self.model_name} uses operator {name}, which the TFLite converter does not support "
                    "(covered: CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, HARD_SWISH, RELU, RELU6, AVERAGE_POOL_2D, "
                    "MEAN, LOGISTIC, MUL, ADD, RESIZE_BILINEAR, Convolution2DTransposeBias); export the model to ONNX instead"
                )
            node = builder(op, inputs, output, name)
            if node is not None:
                nodes.append((node, [x for x in inputs if self.tensors[x].constant is None][: self._arity(node)], output))
        nodes = _conv_before_resize(nodes)
        return TFLiteModule(nodes, input_id, output_id, (in_shape[1], in_shape[2]), out_shape[3], self.model_name)

    @staticmethod
    def _arity(node: nn.Module) -> int:
        if isinstance(node, _Elementwise):
            return 1 if node.constant is not None else 2
        return 1

    def _options(self, op: tflite.Operator, cls: type) -> Any:
        table = op.BuiltinOptions()
        options = cls()
        if table is not None:
            options.Init(table.Bytes, table.Pos)
        return options

    # --- operators -------------------------------------------------------------------------
    def _op_dequantize(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> None:
        value = self.constant(inputs[0], "input", name)
        out = self.tensors[output]
        self.tensors[output] = _Tensor(out.name, out.shape, value.astype(np.float32))

    def _conv(self, op: tflite.Operator, inputs: list[int], output: int, name: str, depthwise: bool) -> nn.Module:
        options = self._options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
        weight = self.constant(inputs[1], "kernel", name).astype(np.float32)
        bias = self.constant(inputs[2], "bias", name).astype(np.float32) if len(inputs) > 2 and inputs[2] >= 0 else None
        in_shape = self.tensors[inputs[0]].shape
        stride = (options.StrideH(), options.StrideW())
        dilation = (max(options.DilationHFactor(), 1), max(options.DilationWFactor(), 1))
        if depthwise:  # [1, kh, kw, C*m] -> [C*m, 1, kh, kw]
            torch_weight = weight.transpose(3, 0, 1, 2)
            groups = in_shape[3]
        else:  # OHWI -> OIHW
            torch_weight = weight.transpose(0, 3, 1, 2)
            groups = in_shape[3] // weight.shape[3]
        kh, kw = weight.shape[1], weight.shape[2]
        if options.Padding() == _PADDING_SAME:
            top, bottom = _same_padding(in_shape[1], kh, stride[0], dilation[0])
            left, right = _same_padding(in_shape[2], kw, stride[1], dilation[1])
        else:
            top = bottom = left = right = 0
        return _Conv(torch.from_numpy(np.ascontiguousarray(torch_weight)),
                     None if bias is None else torch.from_numpy(bias), stride, dilation,
                     (top, bottom, left, right), groups,
                     _activation(options.FusedActivationFunction(), name, self.model_name),
                     options.FusedActivationFunction())

    def _op_conv_2d(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return self._conv(op, inputs, output, name, depthwise=False)

    def _op_depthwise_conv_2d(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return self._conv(op, inputs, output, name, depthwise=True)

    def _op_convolution2dtransposebias(self, op: tflite.Operator, inputs: list[int], output: int,
                                       name: str) -> nn.Module:
        raw = bytes(op.CustomOptionsAsNumpy()) if op.CustomOptionsLength() else b""
        if len(raw) < 12:
            raise ModelFormatError(f"{self.model_name}: {name} has {len(raw)} bytes of options, expected 12")
        padding, stride_w, stride_h = struct.unpack("<iii", raw[:12])
        weight = self.constant(inputs[1], "kernel", name).astype(np.float32)  # OHWI
        bias = self.constant(inputs[2], "bias", name).astype(np.float32)
        in_h, in_w = self.tensors[inputs[0]].shape[1:3]
        out_h, out_w = self.tensors[output].shape[1:3]
        kh, kw = weight.shape[1], weight.shape[2]
        if padding == 1:  # kTfLitePaddingSame
            top = max((in_h - 1) * stride_h + kh - out_h, 0) // 2
            left = max((in_w - 1) * stride_w + kw - out_w, 0) // 2
        else:
            top = left = 0
        torch_weight = np.ascontiguousarray(weight.transpose(3, 0, 1, 2))  # -> [I, O, kh, kw]
        return _TransposeConvBias(torch.from_numpy(torch_weight), torch.from_numpy(bias),
                                  (stride_h, stride_w), (top, out_h, left, out_w),
                                  needs_crop=(in_h - 1) * stride_h + kh != out_h or (in_w - 1) * stride_w + kw != out_w
                                  or top > 0 or left > 0)

    def _op_hard_swish(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return _Lambda(F.hardswish)

    def _op_relu(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return _Lambda(F.relu)

    def _op_relu6(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return _Lambda(F.relu6)

    def _op_logistic(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return _Lambda(torch.sigmoid)

    def _op_average_pool_2d(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        options = self._options(op, tflite.Pool2DOptions)
        in_shape = self.tensors[inputs[0]].shape
        kernel = (options.FilterHeight(), options.FilterWidth())
        stride = (options.StrideH(), options.StrideW())
        activation = _activation(options.FusedActivationFunction(), name, self.model_name)
        if options.Padding() == _PADDING_SAME:
            top, bottom = _same_padding(in_shape[1], kernel[0], stride[0])
            left, right = _same_padding(in_shape[2], kernel[1], stride[1])
            if (top, left) != (bottom, right):
                raise UnsupportedOpError(f"{self.model_name}: {name} with asymmetric SAME padding is not supported")
            padding = (top, left)
        else:
            padding = (0, 0)
        if kernel == tuple(in_shape[1:3]) and padding == (0, 0):
            return _Lambda(lambda x: activation(x.mean(dim=(2, 3), keepdim=True)))
        return _Lambda(lambda x: activation(F.avg_pool2d(x, kernel, stride, padding, count_include_pad=False)))

    def _op_mean(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        options = self._options(op, tflite.ReducerOptions)
        axes = tuple(sorted(_NHWC_TO_NCHW_AXIS[int(a) % 4] for a in np.atleast_1d(self.constant(inputs[1], "axis", name))))
        if not options.KeepDims():
            raise UnsupportedOpError(f"{self.model_name}: {name} without keep_dims is not supported")
        return _Lambda(lambda x: x.mean(dim=axes, keepdim=True))

    def _elementwise(self, op: tflite.Operator, inputs: list[int], name: str,
                     fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], options_cls: type) -> nn.Module:
        options = self._options(op, options_cls)
        activation = _activation(options.FusedActivationFunction(), name, self.model_name)
        constants = [self.tensors[i].constant for i in inputs]
        if all(c is not None for c in constants):
            raise UnsupportedOpError(f"{self.model_name}: {name} of two constants is not supported")
        constant_first = constants[0] is not None
        constant = constants[0] if constant_first else constants[1]
        return _Elementwise(fn, None if constant is None else _to_nchw_constant(constant), constant_first, activation)

    def _op_add(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return self._elementwise(op, inputs, name, torch.add, tflite.AddOptions)

    def _op_mul(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        return self._elementwise(op, inputs, name, torch.mul, tflite.MulOptions)

    def _op_resize_bilinear(self, op: tflite.Operator, inputs: list[int], output: int, name: str) -> nn.Module:
        options = self._options(op, tflite.ResizeBilinearOptions)
        size = tuple(int(s) for s in self.constant(inputs[1], "size", name))
        if options.AlignCorners():
            align = True
        elif options.HalfPixelCenters():
            align = False
        else:
            raise UnsupportedOpError(
                f"{self.model_name}: {name} in legacy mode (neither align_corners nor half_pixel_centers) is not supported"
            )
        return _ResizeBilinear((size[0], size[1]), align)


def convert_tflite(path: str | Path, model_name: str | None = None) -> TFLiteModule:
    """Convert a TFLite segmentation model into an equivalent NCHW torch module.

    Args:
        path: the ``.tflite`` file.
        model_name: the name used in error messages (default: the file name).

    Returns:
        A module in eval mode taking ``[N, 3, H, W]`` float32 and returning ``[N, C, H, W]``.

    Raises:
        ModelFormatError: the file is not a readable TFLite model (truncated, corrupt).
        UnsupportedOpError: the graph uses an operator outside the covered list.

    Example:
        >>> module = convert_tflite("selfie_segmentation.tflite")  # doctest: +SKIP
        >>> module.input_hw  # doctest: +SKIP
        (256, 256)
    """
    path = Path(path)
    name = model_name or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc.strerror}") from exc
    try:
        module = _GraphReader(data, name).build()
    except (IndexError, struct.error, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ModelFormatError):
            raise
        raise ModelFormatError(
            f"{name} is truncated or corrupt ({type(exc).__name__} while reading the flatbuffer); "
            "re-fetch it with `realtime-mask models fetch NAME --force` or give an intact file"
        ) from exc
    return module.eval()
