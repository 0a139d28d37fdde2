"""User ONNX models: spec files, flags' equivalents, output kinds and clear shape errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

import engines
from engines.errors import ConfigError, InputShapeError, ModelFormatError
from engines.spec import ModelSpec
from tests.common import need_shared, write_onnx_conv


def _raw(path, batch):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def _has_onnx2torch() -> bool:
    try:
        import onnx2torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("backend", [
    "onnxruntime",
    pytest.param("torch", marks=pytest.mark.skipif(not _has_onnx2torch(), reason="onnx2torch (with torchvision) not installed")),
])
def test_logit_model_gets_sigmoid(tmp_path, backend):
    path = write_onnx_conv(tmp_path / "logit.onnx")
    spec_file = tmp_path / "logit.toml"
    spec_file.write_text('path = "logit.onnx"\noutput = "logit"\ncolor = "bgr"\n')
    engine = engines.load(spec_file, backend=backend)
    assert engine.spec.output == "logit" and engine.spec.input_hw == (32, 32)
    batch = np.random.default_rng(1).random((2, 3, 32, 32), np.float32)
    expected = 1 / (1 + np.exp(-_raw(path, batch)))
    np.testing.assert_allclose(engine.infer(batch), expected, atol=1e-5)


@pytest.mark.skipif(_has_onnx2torch(), reason="onnx2torch is installed here")
def test_torch_backend_without_onnx2torch_says_what_to_do(tmp_path):
    from engines.errors import BackendError

    with pytest.raises(BackendError, match="use --backend onnxruntime"):
        engines.load(write_onnx_conv(tmp_path / "m.onnx"), backend="torch")


def test_class_scores_sum_selected_softmax(tmp_path):
    path = write_onnx_conv(tmp_path / "classes.onnx", out_channels=4)
    spec = ModelSpec(input_hw=(32, 32), output="classes", classes=(1, 3))
    engine = engines.load(path, spec=spec)
    batch = np.random.default_rng(2).random((1, 3, 32, 32), np.float32)
    raw = _raw(path, batch)
    soft = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(engine.infer(batch)[:, 0], soft[:, 1] + soft[:, 3], atol=1e-5)


def test_predict_resizes_back_to_frame(tmp_path):
    engine = engines.load(write_onnx_conv(tmp_path / "m.onnx"), spec=ModelSpec(input_hw=(32, 32), output="logit"))
    frame = np.random.default_rng(0).integers(0, 255, (90, 160, 3), np.uint8)
    probability = engine.predict(frame)
    assert probability.shape == (90, 160) and probability.dtype == np.float32
    assert probability.min() >= 0.0 and probability.max() <= 1.0


def test_mean_std_are_applied(tmp_path):
    from engines.preprocess import frames_to_batch

    spec = ModelSpec(input_hw=(4, 4), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), color="bgr")
    batch = frames_to_batch([np.full((4, 4, 3), 255, np.uint8)], spec)
    np.testing.assert_allclose(batch, 2.0)


@pytest.mark.parametrize(
    "kwargs,spec,message",
    [
        ({"output_rank": 3}, None, r"output must be \[N, 1, H, W\].*got \['N', 32, 32\]"),
        ({"out_channels": 5}, ModelSpec(input_hw=(32, 32)), r"5 channels.*output = \"classes\""),
        ({"out_channels": 2}, ModelSpec(input_hw=(32, 32), output="classes", classes=(4,)), "out of range"),
        ({"in_channels": 1}, ModelSpec(input_hw=(32, 32)), r"NCHW float32 with 3 channels.*got \['N', 1, 32, 32\]"),
        ({"input_type": TensorProto.UINT8}, ModelSpec(input_hw=(32, 32)), r"float32 with 3 channels.*tensor\(uint8\)"),
    ],
)
def test_unusable_onnx_models_are_refused(tmp_path, kwargs, spec, message):
    path = write_onnx_conv(tmp_path / "bad.onnx", **kwargs)
    with pytest.raises(ModelFormatError, match=message):
        engines.load(path, spec=spec)


def test_batch_of_wrong_shape_says_expected_and_actual(tmp_path):
    engine = engines.load(write_onnx_conv(tmp_path / "m.onnx"), spec=ModelSpec(input_hw=(32, 32)))
    with pytest.raises(InputShapeError, match=r"NCHW float32 \[N, 3, 32, 32\], got \(1, 32, 32, 3\) float32"):
        engine.infer(np.zeros((1, 32, 32, 3), np.float32))


def test_spec_file_errors(tmp_path):
    from engines.errors import ModelNotFoundError

    write_onnx_conv(tmp_path / "m.onnx")
    bad = tmp_path / "bad.toml"
    bad.write_text('path = "m.onnx"\ncolour = "rgb"\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        engines.load(bad)
    bad.write_text('path = "m.onnx"\noutput = "classes"\n')
    with pytest.raises(ConfigError, match="needs classes"):
        engines.load(bad)
    bad.write_text('input_size = [32, 32]\n')
    with pytest.raises(ModelNotFoundError, match="names no existing model file"):
        engines.load(bad)
    for line, message in [('classes = "15"', "classes must be a list of ints like \\[15\\], got '15'"),
                          ('mean = "xyz"', "mean must be a list of floats"),  # was three letters, one per channel
                          ('input_size = [1.5, "a"]', "input_size must be \\[H, W\\]"),
                          ('output = "classes"\nclasses = [-1]', "channel indices \\(0, 1, ...\\), got \\[-1\\]"),
                          ("layout = 3", "layout must be a string")]:
        bad.write_text(f'path = "m.onnx"\n{line}\n')
        with pytest.raises(ConfigError, match=message):
            engines.load(bad)


@pytest.mark.parametrize("frame,message", [
    (np.zeros((0, 64, 3), np.uint8), r"frame is empty \(\(0, 64, 3\)\)"),  # was OpenCV's warpPerspective assertion
    (np.zeros((64, 64), np.uint8), "uint8 HxWx3"),
    (np.zeros((64, 64, 4), np.uint8), "uint8 HxWx3"),
    (np.zeros((64, 64, 3), np.float32), "uint8 HxWx3"),
])
def test_predict_refuses_frames_it_cannot_mask(model_cache, frame, message):
    engine = engines.load("mediapipe-selfie")
    with pytest.raises(InputShapeError, match=message):
        engine.predict(frame)


def _write_nan_model(folder: Path) -> Path:
    """A real ONNX model whose answer is NaN everywhere (0 / 0), as an fp16 model that overflows may give."""
    from onnx import helper, numpy_helper

    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=1),
             helper.make_node("Sub", ["mean", "mean"], ["zero"]),
             helper.make_node("Div", ["zero", "zero"], ["nan"])]
    graph = helper.make_graph(nodes, "nan", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("nan", TensorProto.FLOAT, ["N", 1, 32, 32])],
                              initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(folder / "nan.onnx"))
    (folder / "nan.toml").write_text('path = "nan.onnx"\noutput = "probability"\n')
    return folder / "nan.toml"


def test_a_model_answering_nan_is_an_engine_failure_and_fails_closed(tmp_path):
    """NaN compares false with every threshold: unchecked, every person would go out unmasked."""
    need_shared()
    from engines.errors import InferenceError
    from realtime.pipeline import Pipeline
    from tests.common import MEDIA

    engine = engines.load(_write_nan_model(tmp_path))
    with pytest.raises(InferenceError, match="gave NaN or infinite values"):
        engine.predict(np.zeros((48, 64, 3), np.uint8))
    with Pipeline(MEDIA / "carphone_pristine.mp4", engine, "fill", None, max_frames=5) as pipeline:
        results = list(pipeline)
    assert pipeline.privacy_counts["engine_error"] == 5
    assert all(r.image is not None and not r.image.any() for r in results), "every frame fully filled (black)"
    with Pipeline(MEDIA / "carphone_pristine.mp4", engine, "fill", None, max_frames=5, privacy=False) as pipeline, \
            pytest.raises(InferenceError):
        list(pipeline)
