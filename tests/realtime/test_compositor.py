"""The CPU reference of each mode and of mask post-processing, checked against its written definition."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.errors import ConfigError, InputShapeError
from realtime.compositor import MODES, MaskPostprocessor, MaskSettings, make_compositor
from realtime.compositor.background import Background
from realtime.compositor.masks import dilation_halfwidths, ellipse_halfwidths, structuring_element
from realtime.compositor.modes import BlurCompositor, PixelateCompositor, blend
from tests.common import MEDIA, frame_number, need_shared, numbered_video


@pytest.fixture
def frame():
    return np.random.default_rng(11).integers(1, 255, (97, 131, 3), np.uint8)  # odd size, never zeros


def box_alpha(shape, y0, y1, x0, x1):
    alpha = np.zeros(shape[:2], np.float32)
    alpha[y0:y1, x0:x1] = 1.0
    return alpha


@pytest.mark.parametrize("box", [(10, 40, 20, 70), (0, 30, 0, 25), (60, 97, 100, 131), (0, 97, 0, 131)])
def test_blur_in_box_equals_whole_frame_blur(frame, box):
    blur = BlurCompositor(strength=6)
    out = blur.composite(frame, box_alpha(frame.shape, *box))
    y0, y1, x0, x1 = box
    np.testing.assert_array_equal(out[y0:y1, x0:x1], blur.blur(frame)[y0:y1, x0:x1])
    outside = box_alpha(frame.shape, *box) == 0
    np.testing.assert_array_equal(out[outside], frame[outside])


def test_pixelate_is_block_mean_anchored_at_origin(frame):
    block = 16
    out = PixelateCompositor(block).composite(frame, np.ones(frame.shape[:2], np.float32))
    for by in range(0, frame.shape[0], block):
        for bx in range(0, frame.shape[1], block):
            cell = frame[by:by + block, bx:bx + block].reshape(-1, 3).astype(np.float64)
            expected = np.floor(cell.mean(axis=0) + 0.5)
            np.testing.assert_array_equal(out[by:by + block, bx:bx + block].reshape(-1, 3), np.tile(expected, (len(cell), 1)))


def test_pixelate_partial_box_matches_full_frame(frame):
    pixelate = PixelateCompositor(8)
    full = pixelate.composite(frame, np.ones(frame.shape[:2], np.float32))
    out = pixelate.composite(frame, box_alpha(frame.shape, 13, 50, 21, 90))
    np.testing.assert_array_equal(out[13:50, 21:90], full[13:50, 21:90])


def test_fill_overlay_cutout_mask_definitions(frame):
    alpha = box_alpha(frame.shape, 5, 50, 5, 60)
    inside = alpha == 1
    fill = make_compositor("fill", color="#102030").composite(frame, alpha)
    assert (fill[inside] == (0x30, 0x20, 0x10)).all()
    overlay = make_compositor("overlay", color=(0, 255, 0), opacity=0.25).composite(frame, alpha)
    expected = np.floor(0.75 * frame[inside].astype(np.float64) + 0.25 * np.array([0, 255, 0]) + 0.5)
    assert np.abs(overlay[inside].astype(np.int32) - expected).max() <= 1
    cutout = make_compositor("cutout").composite(frame, alpha)
    assert cutout.shape == (*frame.shape[:2], 4)
    np.testing.assert_array_equal(cutout[..., :3], frame)
    assert (cutout[..., 3][inside] == 0).all() and (cutout[..., 3][~inside] == 255).all()
    green = make_compositor("cutout", cutout_format="green").composite(frame, alpha)
    assert (green[inside] == (0, 255, 0)).all()
    mask = make_compositor("mask").composite(frame, alpha)
    assert (mask[inside] == 255).all() and (mask[~inside] == 0).all()


def test_replace_resizes_background(tmp_path, frame):
    background = np.full((10, 20, 3), (1, 2, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "bg.png"), background)
    alpha = box_alpha(frame.shape, 0, 97, 0, 60)
    out = make_compositor("replace", background=str(tmp_path / "bg.png")).composite(frame, alpha)
    assert (out[:, :60] == (1, 2, 3)).all()
    np.testing.assert_array_equal(out[:, 60:], frame[:, 60:])


def _shown(background, times, stream=0):
    return [frame_number(background.frame_bgr(at, stream)) for at in times]


@pytest.mark.parametrize("source_fps,expected", [(10, [0, 3, 6, 9, 0, 3, 6, 9, 0]),  # 0.4 s long: loops at 0.4 s
                                                 (60, [0, 0, 1, 1, 2, 2, 3, 3, 4])])
def test_a_background_video_plays_at_its_own_speed_whatever_the_frame_rate(tmp_path, source_fps, expected):
    """A 30 fps background of 12 frames behind a 10 fps and a 60 fps source: the frame of each moment (before, the
    next frame a frame: a 10 fps camera played it at a third of its speed), looped at its length. Clocks start
    anywhere (a camera's monotonic time): the background starts with the stream's first frame."""
    background = Background(numbered_video(tmp_path / "bg.mkv", [k / 30 for k in range(12)]))
    assert background.is_video
    assert _shown(background, [5000.25 + k / source_fps for k in range(9)]) == expected
    if source_fps == 10:
        assert background.duration == pytest.approx(0.4, abs=2e-3)  # learned at the end of the first pass


def test_a_background_video_keeps_its_own_timestamps(tmp_path):
    """Frames held for different times (a phone's varying rate, a GIF's delays): each shows for its own span."""
    background = Background(numbered_video(tmp_path / "bg.mkv", [0.0, 0.1, 0.4, 0.5]))
    assert _shown(background, [0.0, 0.09, 0.1, 0.39, 0.4, 0.45, 0.5, 0.6, 0.67, 0.77, 1.07]) == \
        [0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2]  # 0.667 s long: the last frame held for the mean frame period


def test_each_stream_sees_the_whole_background_from_its_own_start(tmp_path):
    """Two cameras, frames interleaved: each plays the background from its own first frame at its own speed (before,
    they shared one reader: each saw every other frame, at twice the speed)."""
    background = Background(numbered_video(tmp_path / "bg.mkv", [k / 30 for k in range(12)]))
    shown = {"a": [], "b": []}
    for k in range(4):
        shown["a"].append(frame_number(background.frame_bgr(100.0 + k / 10, "a")))
        shown["b"].append(frame_number(background.frame_bgr(7.5 + k / 15, "b")))
    assert shown == {"a": [0, 3, 6, 9], "b": [0, 2, 4, 6]}


def test_without_a_time_each_frame_takes_the_next_background_frame(tmp_path):
    """The Python API's plain composite(frame, alpha): one background frame a frame, looped — the first one once
    (before, the first was shown twice)."""
    background = Background(numbered_video(tmp_path / "bg.mkv", [k / 30 for k in range(3)]))
    assert _shown(background, [None] * 7) == [0, 1, 2, 0, 1, 2, 0]


def test_a_gif_background_is_animated(tmp_path):
    """An animated GIF plays (before, OpenCV's imread read it as a still of its first frame); a GIF of one frame, a
    PNG and an image given as an array are stills."""
    need_shared()
    gif = Background(MEDIA / "head-pose-face-detection-female-and-male.gif")
    assert gif.is_video and not np.array_equal(gif.frame_bgr(0.0), gif.frame_bgr(1.0))
    cv2.imwrite(str(tmp_path / "still.png"), np.full((6, 8, 3), 9, np.uint8))
    still = Background(tmp_path / "still.png")
    assert not still.is_video and (still.frame_bgr(3.0) == 9).all()
    frame = np.full((4, 4, 3), 50, np.uint8)
    replaced = make_compositor("replace", background=np.full((2, 2, 3), 7, np.uint8)).composite(
        frame, np.ones((4, 4), np.float32))
    assert (replaced == 7).all()


def test_replace_composites_the_background_of_the_frames_moment(tmp_path, frame):
    """The mode takes the background of the frame's time, even where nothing is masked (the video plays on)."""
    replace = make_compositor("replace", background=str(numbered_video(tmp_path / "bg.mkv", [k / 30 for k in range(12)])))
    nothing, everything = np.zeros(frame.shape[:2], np.float32), np.ones(frame.shape[:2], np.float32)
    np.testing.assert_array_equal(replace.composite(frame, nothing, at=0.0), frame)
    assert frame_number(replace.composite(frame, everything, at=0.2)) == 6
    assert frame_number(replace.composite(frame, everything)) == 7  # no time: the next frame
    replace.close()


def test_soft_blend_formula(frame):
    effect = np.full_like(frame, 200)
    alpha = np.random.default_rng(5).random(frame.shape[:2], np.float32)
    expected = np.floor(alpha[..., None] * 200.0 + (1 - alpha[..., None]) * frame + 0.5)
    assert np.abs(blend(frame, effect, alpha).astype(np.int32) - expected).max() <= 1


def test_every_mode_is_listed_and_has_a_default_target():
    assert set(MODES) == {"blur", "pixelate", "fill", "replace", "overlay", "cutout", "mask"}
    assert MODES["replace"].default_target == "background" and MODES["blur"].default_target == "person"


def test_mask_steps_threshold_target_dilate_feather():
    probability = np.zeros((41, 41), np.float32)
    probability[20, 20] = 0.9
    binary = MaskPostprocessor(MaskSettings(dilate_px=5)).binary(probability)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    np.testing.assert_array_equal(binary[15:26, 15:26], disc)
    assert binary.sum() == disc.sum()
    inverted = MaskPostprocessor(MaskSettings(target="background"))(probability)
    assert inverted[20, 20] == 0 and inverted.sum() == 41 * 41 - 1
    feathered = MaskPostprocessor(MaskSettings(feather_px=2))(probability)
    assert feathered[20, 20] == pytest.approx(1 / 25) and feathered[18, 18] == pytest.approx(1 / 25)
    assert feathered[17, 20] == 0


def test_temporal_ema_follows_the_formula():
    rng = np.random.default_rng(3)
    probabilities = [rng.random((8, 8), np.float32) for _ in range(6)]
    post = MaskPostprocessor(MaskSettings(ema_alpha=0.3, threshold=0.5))
    state = probabilities[0].astype(np.float64)
    for i, p in enumerate(probabilities):
        if i:
            state = 0.3 * p + 0.7 * state
        np.testing.assert_array_equal(post(p), (state >= 0.5).astype(np.float32))


@pytest.mark.parametrize("target", ["person", "background"])
def test_fail_closed_smoothing_never_masks_less_than_the_newest_probability(target):
    """Privacy's moving average: where the newest probability masks more than the average, it wins — a person walking
    in is masked in the first frame the model sees them; a person who leaves stays masked while the average decays."""
    rng = np.random.default_rng()
    probabilities = [rng.random((8, 8), np.float32) for _ in range(6)]
    post = MaskPostprocessor(MaskSettings(ema_alpha=0.3, target=target, fail_closed=True))
    state = probabilities[0]
    for i, p in enumerate(probabilities):
        if i:
            average = np.float32(0.3) * p + np.float32(0.7) * state
            state = np.maximum(average, p) if target == "person" else np.minimum(average, p)
        alpha = post(p)
        np.testing.assert_array_equal(post.smoothed, state)
        np.testing.assert_array_equal(alpha, ((state >= 0.5) == (target == "person")).astype(np.float32))
        plain = (p >= 0.5) == (target == "person")
        assert (alpha[plain] == 1).all()  # masked wherever the newest probability alone masks
    held = MaskPostprocessor(MaskSettings(ema_alpha=0.3, fail_closed=True))
    assert held(np.ones((2, 2), np.float32)).all() and held(np.zeros((2, 2), np.float32)).all()  # 0.7: held on
    assert not held(np.zeros((2, 2), np.float32)).any()  # 0.49: gone


def test_ellipse_halfwidths_rebuild_opencv_element():
    for radius in (0, 1, 4, 13):
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        np.testing.assert_array_equal(structuring_element(ellipse_halfwidths(radius)), element)


@pytest.mark.parametrize("dilate,feather", [(0, 3), (4, 2), (7, 5)])
def test_fail_closed_feathering_keeps_every_masked_pixel_fully_masked(dilate, feather):
    """Privacy's feather lies outside the mask: the dilation grows by the feather's square (one element: the disc's
    and the square's Minkowski sum, as dilating by one then the other), so every pixel the threshold and the disc
    mask keeps alpha 1 — at the frame's edges too. Without it, feathering leaves the mask's edge at about 0.5."""
    probability = np.zeros((60, 180), np.float32)
    for y, x in ((10, 40), (12, 43), (30, 90), (45, 150), (59, 120), (0, 179)):  # specks (the hardest case), corners
        probability[y, x] = 1.0
    probability[:, 0] = 1.0  # and a column at the frame's edge
    settings = MaskSettings(dilate_px=dilate, feather_px=feather, fail_closed=True)
    element = structuring_element(dilation_halfwidths(settings))
    padded = np.pad(probability.astype(np.uint8), 30)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1,) * 2)
    twice = cv2.dilate(cv2.dilate(padded, disc), np.ones((2 * feather + 1,) * 2, np.uint8))
    np.testing.assert_array_equal(cv2.dilate(padded, element), twice)
    masked = cv2.dilate(probability.astype(np.uint8), disc).astype(bool)  # what the disc alone masks
    alpha = MaskPostprocessor(settings)(probability)
    outside = alpha[~masked]
    assert alpha[masked].min() > 1 - 1e-6 and ((outside > 0) & (outside < 1)).any()  # the soft edge lies outside
    inward = MaskPostprocessor(MaskSettings(dilate_px=dilate, feather_px=feather))(probability)
    assert inward[masked].min() < 0.6  # before: softened inwards too


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": 1}, {"dilate_px": -1}, {"feather_px": -2},
                                    {"ema_alpha": 0}, {"ema_alpha": 1.5}, {"target": "car"}])
def test_bad_mask_settings(kwargs):
    with pytest.raises(ConfigError):
        MaskSettings(**kwargs)


@pytest.mark.parametrize("mode,kwargs", [("blur", {"strength": 0}), ("pixelate", {"block": 1}), ("fill", {"color": "1,2"}),
                                         ("overlay", {"opacity": 0}), ("cutout", {"cutout_format": "png"}),
                                         ("replace", {}), ("blur", {"radius": 3}), ("sparkle", {})])
def test_bad_mode_options(mode, kwargs):
    with pytest.raises(ConfigError):
        make_compositor(mode, **kwargs)


def test_frame_and_alpha_shapes_are_checked(frame):
    with pytest.raises(InputShapeError, match="alpha must be float32"):
        make_compositor("fill").composite(frame, np.zeros((5, 5), np.float32))
