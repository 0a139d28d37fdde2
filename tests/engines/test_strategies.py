"""Tiled and motion-ROI inference: seams, crop coordinates, skipping static frames, presets, bad values, recall."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import engines
from engines.errors import ConfigError
from engines.preprocess import frames_to_batch
from engines.strategies import (
    InferenceStrategy,
    StrategySettings,
    grid_shape,
    merge_tiles,
    parse_tiles,
    roi_box,
    tile_boxes,
)
from tests.common import SHARED, need_shared
from tests.realtime.test_cli_models import assert_one_line_error, run_cli


@pytest.mark.parametrize("rows,cols,overlap", [(2, 2, 0.2), (3, 3, 0.25), (1, 4, 0.1), (2, 3, 0.0)])
def test_tiles_cover_the_frame_and_merge_without_seams(rows, cols, overlap):
    height, width = 431, 767
    boxes = tile_boxes(height, width, rows, cols, overlap)
    assert len(boxes) == rows * cols
    covered = np.zeros((height, width), bool)
    for y0, y1, x0, x1 in boxes:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # a smooth field (a person crossing tile borders) cut into tiles and merged comes back unchanged
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    field = (np.sin(xs / 60.0) * np.cos(ys / 45.0) + 1) / 2
    merged = merge_tiles([field[y0:y1, x0:x1] for y0, y1, x0, x1 in boxes], boxes, height, width)
    np.testing.assert_allclose(merged, field, atol=1e-5)
    # and where tiles disagree, the blend stays continuous across each border: no jump
    parts = [np.full((y1 - y0, x1 - x0), float(i % 2), np.float32) for i, (y0, y1, x0, x1) in enumerate(boxes)]
    blended = merge_tiles(parts, boxes, height, width)
    if overlap > 0:
        assert np.abs(np.diff(blended, axis=1)).max() < 0.1 and np.abs(np.diff(blended, axis=0)).max() < 0.1


@pytest.mark.parametrize("height,width,aspect_wh,rows", [(432, 768, 1.0, 3), (432, 768, 256 / 144, 3), (1080, 1920, 1.0, 2),
                                                         (480, 640, 1.0, 2), (720, 540, 1.0, 3)])
def test_auto_grid_gives_tiles_the_models_aspect(height, width, aspect_wh, rows):
    grid = grid_shape(height, width, (rows, 0), 0.25, aspect_wh)
    assert grid[0] == rows
    aspects = [(x1 - x0) / (y1 - y0) / aspect_wh for y0, y1, x0, x1 in tile_boxes(height, width, *grid, 0.25)]
    # the nearest whole number of columns: within one column's worth of the model's aspect
    assert all(0.8 < a < 1.25 for a in aspects), aspects
    assert grid_shape(height, width, (rows, 2), 0.25, aspect_wh) == (rows, 2), "explicit columns are kept"


def test_tiny_frames_get_no_empty_tile():
    """A grid larger than the frame (3x6 on a 2x1 thumbnail) shrinks to it; every tile keeps at least one pixel."""
    for height in range(1, 14):
        for width in range(1, 14):
            for tiles in [(3, 0), (3, 6), (4, 9), (2, 2)]:
                for overlap in (0.0, 0.2, 0.5):
                    rows, cols = grid_shape(height, width, tiles, overlap, 1.0)
                    assert rows <= height and cols <= width
                    boxes = tile_boxes(height, width, rows, cols, overlap)
                    assert all(0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width for y0, y1, x0, x1 in boxes), boxes
                    covered = np.zeros((height, width), bool)
                    for y0, y1, x0, x1 in boxes:
                        covered[y0:y1, x0:x1] = True
                    assert covered.all()


def test_roi_box_geometry_is_exact():
    box = roi_box(100, 50, 20, 40, (432, 768), aspect_wh=1.0, margin=0.25, min_px=64)
    y0, y1, x0, x1 = box
    assert (y1 - y0, x1 - x0) == (64, 64)  # 40 * 1.5 = 60 < 64 minimum, square aspect
    assert (x0 + x1) / 2 == pytest.approx(110, abs=0.5) and (y0 + y1) / 2 == pytest.approx(70, abs=0.5)
    edge = roi_box(0, 0, 30, 30, (432, 768), aspect_wh=256 / 144, margin=0.0, min_px=16)
    assert edge[0] == 0 and edge[2] == 0, "crops are moved inside the frame, not cut"
    assert (edge[3] - edge[2]) / (edge[1] - edge[0]) == pytest.approx(256 / 144, rel=0.05)


class RecordingEngine(engines.Engine):
    """A real engine that also records the crops it was given (to check crop and paste coordinates)."""

    def __init__(self, inner):
        super().__init__(inner.model_name, inner.spec, inner.device, inner.precision)
        self.inner, self.calls, self.batches = inner, [], []

    def _run(self, batch):
        self.calls.append(batch.shape[0])
        self.batches.append(batch.copy())
        return self.inner._run(batch)


def test_motion_roi_crops_paste_back_and_static_frames_skip(model_cache):
    engine = RecordingEngine(engines.load("mediapipe-selfie"))
    strategy = InferenceStrategy(engine, StrategySettings.preset("motion-roi", refresh_every=1000))
    background = np.random.default_rng(0).integers(40, 60, (240, 320, 3), np.uint8)
    for _ in range(30):  # learn the empty scene
        strategy(background)
    static_skips = strategy.stats.skipped
    assert static_skips >= 25, "frames where nothing changed must skip inference"
    moving = background.copy()
    moving[100:160, 200:240] = 255  # a bright block appears: motion
    calls_before = len(engine.calls)
    probability = strategy(moving)
    assert len(engine.calls) == calls_before + 1 and strategy.stats.engine_crops >= 1
    assert probability.shape == (240, 320)
    assert strategy.stats.skipped == static_skips


def test_surveillance_reruns_only_the_tiles_that_move(model_cache):
    engine = RecordingEngine(engines.load("mediapipe-selfie"))
    strategy = InferenceStrategy(engine, StrategySettings.preset("surveillance", refresh_every=1000))
    background = np.random.default_rng(1).integers(40, 60, (432, 768, 3), np.uint8)
    strategy(background)
    boxes = strategy.tile_boxes(432, 768)
    assert engine.calls == [len(boxes) + 1], "the first frame runs every tile and the full frame"
    for _ in range(20):  # a still scene: nothing moves, nothing runs, the last mask is reused
        strategy(background)
    assert engine.calls == [len(boxes) + 1] and strategy.stats.skipped == 20
    calls = len(engine.calls)
    moving = background.copy()
    moving[20:80, 20:60] = 255  # something appears in the top-left corner
    strategy(moving)
    touched = [b for b in boxes if b[0] < 80 and b[1] > 20 and b[2] < 60 and b[3] > 20]
    assert len(engine.calls) == calls + 1 and engine.calls[-1] == len(touched) < len(boxes)


def test_motion_roi_crop_and_paste_coordinates_are_exact(model_cache):
    engine = RecordingEngine(engines.load("mediapipe-selfie"))
    strategy = InferenceStrategy(engine, StrategySettings.preset("motion-roi", refresh_every=1000))
    height, width = 432, 768
    background = np.random.default_rng(2).integers(40, 60, (height, width, 3), np.uint8)
    for _ in range(10):
        last = strategy(background).copy()
    moving = background.copy()
    moving[150:250, 300:340] = 230  # a bright upright block appears
    seen = []
    infer_crops = strategy._infer_crops
    strategy._infer_crops = lambda frame, boxes: seen.extend(boxes) or infer_crops(frame, boxes)
    probability = strategy(moving)
    (y0, y1, x0, x1), = seen
    assert y0 <= 150 and y1 >= 250 and x0 <= 300 and x1 >= 340, "the crop holds the whole moving region"
    assert (x1 - x0) == pytest.approx(y1 - y0, abs=1), "at the model's (square) aspect"
    # the engine saw exactly that crop of the frame
    np.testing.assert_array_equal(engine.batches[-1], frames_to_batch([moving[y0:y1, x0:x1]], engine.spec))
    # outside the crop the last mask stands, to the bit; inside, the crop's probability is pasted back
    outside = np.ones((height, width), bool)
    outside[y0:y1, x0:x1] = False
    assert not strategy.motion[outside].any(), "every moving pixel is inside the crop"
    np.testing.assert_array_equal(probability[outside], last[outside])
    crop_probability = cv2.resize(engine.inner.infer(engine.batches[-1])[0, 0], (x1 - x0, y1 - y0),
                                  interpolation=cv2.INTER_LINEAR)
    assert (probability[y0:y1, x0:x1] >= crop_probability - 1e-6).all()
    assert np.isclose(probability[y0:y1, x0:x1], crop_probability, atol=1e-6).mean() > 0.9


@pytest.mark.parametrize("confidence", [0.2, 0.3, 0.7])
def test_confidence_lands_on_the_pipeline_threshold(model_cache, confidence):
    strategy = InferenceStrategy(engines.load("mediapipe-selfie"), StrategySettings(confidence=confidence))
    p = np.linspace(0, 1, 1001, dtype=np.float32)
    out = strategy._rescale(p)
    assert out.dtype == np.float32 and out[0] == 0 and out[-1] == pytest.approx(1, abs=1e-6)
    assert np.all(np.diff(out) >= 0), "monotone: the order of probabilities is kept"
    assert ((out >= 0.5) == (p >= confidence - 1e-6)).mean() > 0.999, "a pixel counts exactly when p >= confidence"


def test_false_foreground_control_drops_small_and_unanchored_regions(model_cache):
    settings = StrategySettings(name="surveillance", min_region=0.001, persistence=2)
    strategy = InferenceStrategy(engines.load("mediapipe-selfie"), settings)
    height, width = 200, 300  # 60,000 px: min_region is 60 px
    probability = np.zeros((height, width), np.float32)
    probability[10:50, 10:30] = 0.9    # 800 px, overlaps the previous mask: kept
    probability[100:105, 100:105] = 0.9  # 25 px: too small, dropped
    probability[120:160, 200:220] = 0.8  # 800 px, no previous mask, no motion: dropped
    probability[150:190, 20:40] = 0.7    # 800 px, overlaps motion: kept
    previous = np.zeros_like(probability)
    previous[40:60, 10:30] = 0.9
    strategy.motion = np.zeros((height, width), np.uint8)
    strategy.motion[185:195, 30:50] = 1
    out = strategy._control(probability, previous)
    assert (out[10:50, 10:30] == 0.9).all() and (out[150:190, 20:40] == 0.7).all()
    assert (out[100:105, 100:105] < 0.5).all() and (out[120:160, 200:220] < 0.5).all()
    assert (out[probability < 0.5] == probability[probability < 0.5]).all(), "background is untouched"


def test_privacy_union_masks_motion_the_model_does_not_claim(model_cache):
    engine = engines.load("mediapipe-selfie")
    plain = InferenceStrategy(engine, StrategySettings.preset("tiles"))
    union = InferenceStrategy(engine, StrategySettings.preset("tiles", privacy_union_motion=True))
    background = np.random.default_rng(3).integers(40, 60, (240, 320, 3), np.uint8)
    for _ in range(5):
        plain(background), union(background)
    moving = background.copy()
    moving[60:140, 100:160] = 255  # a bright block: motion, not a person
    assert (plain(moving)[70:130, 110:150] < 0.5).mean() > 0.9, "the model does not claim the block"
    assert (union(moving)[70:130, 110:150] >= 0.5).all(), "the union masks it anyway"


@pytest.mark.parametrize("name", ["full", "tiles", "motion-roi", "surveillance"])
def test_a_new_frame_size_mid_stream_starts_over(model_cache, name):
    strategy = InferenceStrategy(engines.load("mediapipe-selfie"), StrategySettings.preset(name, privacy_union_motion=True))
    rng = np.random.default_rng(4)
    for shape in [(240, 320, 3)] * 3 + [(360, 640, 3)] * 3 + [(240, 320, 3), (2, 3, 3), (1, 1, 3)]:
        frame = rng.integers(0, 255, shape, np.uint8)
        assert strategy(frame).shape == shape[:2]


def test_presets_and_bad_values():
    assert StrategySettings.preset("surveillance").tiles == (3, 0)
    assert parse_tiles("2x3") == (2, 3) and parse_tiles("3") == (3, 0)
    for bad in ({"name": "magic"}, {"tiles": (0, 3)}, {"tile_overlap": 1.0}, {"confidence": 0.0}):
        with pytest.raises(ConfigError):
            StrategySettings(**bad)


@pytest.mark.parametrize("args,fragment", [
    (["--tiles", "0x3"], "--tiles needs at least one row"),
    (["--tiles", "two"], "--tiles takes R or RxC"),
    (["--tiles", "2x3x4"], "--tiles takes R or RxC"),
    (["--tile-overlap", "1.0"], "tile overlap must be in [0, 1)"),
    (["--strategy", "magic"], "invalid choice: 'magic'"),
])
def test_cli_bad_strategy_values(model_cache, tmp_path, args, fragment):
    need_shared()
    result = run_cli("run", "--source", str(SHARED / "media" / "carphone_pristine.mp4"), "--output", "null", *args)
    assert_one_line_error(result, fragment)


def test_strategy_from_cli_and_config(model_cache, tmp_path):
    need_shared()
    import json

    config = tmp_path / "run.toml"
    config.write_text(f'source = "{SHARED / "media" / "one-by-one-person-detection.mp4"}"\noutput = "null"\n'
                      f'strategy = "surveillance"\nmax-frames = 12\nstats = "{tmp_path / "s.json"}"\n')
    assert run_cli("run", "--config", str(config)).returncode == 0
    counters = json.loads((tmp_path / "s.json").read_text())["counters"]
    assert "strategy_engine_crops" in counters and counters["strategy_engine_crops"] >= 12
    masks = tmp_path / "m.npz"
    result = run_cli("masks", str(SHARED / "media" / "carphone_pristine.mp4"), "--strategy", "tiles", "--tiles", "2x2",
                     "--max-frames", "4", "--out", str(masks))
    assert result.returncode == 0, result.stderr
    assert np.load(masks)["masks"].shape == (4, 144, 176)


def test_surveillance_finds_more_far_people_than_full_frame(model_cache):
    need_shared()
    from realtime.bench.people import build_far_people, evaluate

    engine = engines.load("mediapipe-selfie")
    dataset = build_far_people(Path(SHARED), (0.10, 0.20), sequences=2, frames=20)
    full = evaluate(engine, dataset, StrategySettings.preset("full"))
    surveillance = evaluate(engine, dataset, StrategySettings.preset("surveillance"))
    assert full["recall"] < 0.3, "the set is hard for full-frame inference"
    assert surveillance["recall"] >= 0.9 and surveillance["false_foreground_mean"] <= 0.02, surveillance


@pytest.mark.parametrize("args,fragment", [(["--strategies", "full,tiles@0x2"], "--tiles needs at least one row"),
                                           (["--strategies", "full,magic"], "unknown strategy 'magic'"),
                                           (["--sequences", "0"], "--sequences and --frames must be >= 1"),
                                           (["--frames", "0"], "--sequences and --frames must be >= 1")])
def test_eval_people_bad_inputs(args, fragment):
    need_shared()
    result = run_cli("eval-people", "--shared", str(SHARED), *args)
    assert_one_line_error(result, fragment)


def test_a_strategys_timings_stay_bounded_however_long_the_run(model_cache, monkeypatch):
    """A 24/7 camera: the counters count every frame, the times kept are the last ``TIMES_KEPT`` (before, a list of
    every call's: 84 MB a day at 30 fps)."""
    import engines.strategies

    monkeypatch.setattr(engines.strategies, "TIMES_KEPT", 8)
    strategy = InferenceStrategy(engines.load("mediapipe-selfie"), StrategySettings.preset("motion-roi"))
    frame = np.random.default_rng(1).integers(0, 255, (96, 128, 3), np.uint8)
    for _ in range(20):
        strategy(frame)
    assert strategy.stats.frames == 20 and len(strategy.stats.ms) == 8 and all(t >= 0 for t in strategy.stats.ms)
