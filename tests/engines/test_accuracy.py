"""Our converted models against MediaPipe's own masks (../shared/reference), through the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from engines.metrics import compare_masks
from realtime.cli import main
from tests.common import CLIPS, MEDIA, REFERENCE, need_shared


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@pytest.mark.parametrize("model_index,model", [(0, "mediapipe-selfie"), (1, "mediapipe-selfie-landscape")])
@pytest.mark.parametrize("clip", CLIPS)
def test_masks_match_mediapipe(model_cache, tmp_path, clip, model_index, model, backend):
    need_shared()
    reference = np.load(REFERENCE / f"{clip.rsplit('.', 1)[0]}.model{model_index}.npz")["masks"]
    out = tmp_path / "masks.npz"
    code = main(["masks", str(MEDIA / clip), "--model", model, "--backend", backend,
                 "--max-frames", str(len(reference)), "--out", str(out)])
    assert code == 0
    masks = np.load(out)["masks"]
    assert masks.dtype == np.uint8 and masks.shape == reference.shape
    result = compare_masks(masks, reference)
    if result["iou_frames"]:
        assert result["mean_iou"] >= 0.97, result
    assert result["max_empty_foreground"] <= 0.005, result
    assert result["mean_abs_diff"] <= 0.02, result
