"""The TFLite -> torch converter and the ONNX export agree with each other and fail clearly."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import tflite
import torch

import engines
from engines.converters.tflite_to_torch import convert_tflite
from engines.errors import ModelFormatError, UnsupportedOpError
from engines.zoo import MODELS
from tests.common import write_tflite_single_op


@pytest.mark.parametrize("name", list(MODELS))
def test_torch_module_and_onnx_export_agree(model_cache, name):
    resolved = engines.resolve(name)
    module = resolved.torch_module
    height, width = MODELS[name].spec.input_hw
    batch = torch.rand(3, 3, height, width, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = module(batch).numpy()
    session = ort.InferenceSession(str(resolved.onnx_path("fp32")), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.shape[0] == out.shape[0] and not isinstance(inp.shape[0], int), "batch must be dynamic"
    actual = session.run(None, {inp.name: batch.numpy()})[0]
    assert actual.shape == (3, 1, height, width)
    assert np.abs(actual - expected).max() <= 1e-4


@pytest.mark.parametrize("name", list(MODELS))
def test_fp16_onnx_keeps_float32_io_and_stays_close(model_cache, name):
    resolved = engines.resolve(name)
    fp16 = ort.InferenceSession(str(resolved.onnx_path("fp16")), providers=["CPUExecutionProvider"])
    fp32 = ort.InferenceSession(str(resolved.onnx_path("fp32")), providers=["CPUExecutionProvider"])
    assert fp16.get_inputs()[0].type == "tensor(float)" and fp16.get_outputs()[0].type == "tensor(float)"
    import onnx

    initializers = onnx.load(str(resolved.onnx_path("fp16"))).graph.initializer
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in initializers), "weights must be fp16"
    height, width = MODELS[name].spec.input_hw
    batch = np.random.default_rng(3).random((2, 3, height, width), np.float32)
    name_in = fp32.get_inputs()[0].name
    diff = np.abs(fp16.run(None, {name_in: batch})[0] - fp32.run(None, {name_in: batch})[0])
    assert diff.max() < 0.02


def test_unsupported_op_names_op_and_model(tmp_path):
    path = write_tflite_single_op(tmp_path / "tanh.tflite", tflite.BuiltinOperator.TANH)
    with pytest.raises(UnsupportedOpError, match=r"tanh\.tflite uses operator TANH"):
        convert_tflite(path)


def test_supported_single_op_model_converts(tmp_path):
    path = write_tflite_single_op(tmp_path / "relu.tflite", tflite.BuiltinOperator.RELU)
    module = convert_tflite(path)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(module(x), torch.relu(x))


@pytest.mark.parametrize("keep", [0, 7, 1000, 100_000, 249_000])
def test_truncated_tflite_is_a_format_error(model_cache, tmp_path, keep):
    data = (model_cache / "models" / "mediapipe-selfie" / "selfie_segmentation.tflite").read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:keep])
    with pytest.raises(ModelFormatError, match=r"cut\.tflite"):
        convert_tflite(path)


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "x.tflite"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(ModelFormatError, match="TFL3"):
        convert_tflite(path)
