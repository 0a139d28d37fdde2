"""The torch engine compiled with torch.compile (backend ``torch-compile``): same masks, only prepared batch sizes."""

from __future__ import annotations

import numpy as np
import torch

from engines.backends.torch_backend import TorchEngine
from engines.spec import ModelSpec
from tests.common import MEDIA, REFERENCE, need_shared


def test_compiled_selfie_matches_mediapipe_through_the_cli(model_cache, tmp_path):
    """The real model, compiled on this CPU (TorchInductor's C++ code), against MediaPipe's own masks."""
    from engines.metrics import compare_masks
    from realtime.cli import main

    need_shared()
    clip = "carphone_pristine.mp4"
    reference = np.load(REFERENCE / "carphone_pristine.model0.npz")["masks"][:20]
    out = tmp_path / "masks.npz"
    assert main(["masks", str(MEDIA / clip), "--backend", "torch-compile", "--max-frames", "20", "--out", str(out)]) == 0
    result = compare_masks(np.load(out)["masks"], reference)
    assert result["mean_iou"] >= 0.97 and result["mean_abs_diff"] <= 0.02, result


def _compiles() -> int:
    from torch._dynamo.utils import counters

    return counters["frames"]["ok"]  # frames Dynamo compiled so far in this process


def test_a_compiled_engine_runs_only_prepared_batch_sizes():
    """Batch 1 is compiled while loading, others by prepare(); a smaller batch is padded up to the next prepared
    size and a larger one cut into prepared sizes, so nothing compiles mid-stream — and every output equals the
    uncompiled module's."""
    conv = torch.nn.Conv2d(3, 1, 3, padding=1)
    spec = ModelSpec(input_hw=(8, 8), output="logit")
    before = _compiles()
    engine = TorchEngine(conv, spec, "conv", compile=True)
    assert engine.backend == "torch-compile" and _compiles() == before + 1
    engine.prepare(3)
    assert _compiles() == before + 2
    batch = torch.rand((7, 3, 8, 8))
    with torch.no_grad():
        expected = conv(batch)
    for n in (1, 2, 3, 7):  # 2: padded to 3; 7: 3 + 3 + (1)
        torch.testing.assert_close(engine.infer_tensor(batch[:n]), expected[:n], rtol=1e-5, atol=1e-5)
    probability = engine.infer(batch[:5].numpy())
    assert _compiles() == before + 2, "no batch size compiled after prepare()"
    assert probability.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(probability, torch.sigmoid(expected[:5]).numpy(), rtol=1e-5, atol=1e-6)
