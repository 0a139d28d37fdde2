"""FrameMasker: a program's own frames masked one call at a time, by the rules of a pipeline run."""

from __future__ import annotations

import numpy as np
import pytest

from engines.errors import ConfigError, InputShapeError
from realtime.capture.files import read_frames
from realtime.compositor import MaskSettings
from realtime.pipeline import FrameMasker, Pipeline
from tests.common import MEDIA, frame_number, need_shared, numbered_video
from tests.realtime.test_privacy import FlakyEngine

SETTINGS = MaskSettings(dilate_px=4, feather_px=3, ema_alpha=0.4)


def test_frames_masked_one_call_at_a_time_equal_a_pipeline_run(engine):
    """The same clip through the pipeline and frame by frame through a masker: the same images, the same masks —
    smoothing (each frame's average depends on the last), dilation and feather included."""
    need_shared()
    clip = MEDIA / "carphone_pristine.mp4"
    with Pipeline(str(clip), engine, "pixelate", mask=SETTINGS, max_frames=40) as pipeline:
        expected = list(pipeline)
    with FrameMasker(engine, "pixelate", mask=SETTINGS) as masker:
        got = [masker(image) for image in read_frames(clip, limit=40)]
    assert len(got) == len(expected) == 40 and masker.privacy and masker.mask_settings.fail_closed
    for mine, theirs in zip(got, expected, strict=True):
        assert np.array_equal(mine.image, theirs.image) and np.array_equal(mine.alpha, theirs.alpha)
        assert mine.fully_masked is None and set(mine.timings_ms) == {"preprocess", "inference", "postprocess",
                                                                       "composite"}
    assert 0.2 < np.mean([r.coverage for r in got]) < 0.9  # the person was masked, not all of the frame


def test_each_stream_keeps_its_own_moving_average(engine):
    """Two cameras' frames interleaved through one masker equal each camera's frames through a masker of its own."""
    need_shared()
    a = read_frames(MEDIA / "one-by-one-person-detection.mp4", limit=12)
    b = read_frames(MEDIA / "carphone_pristine.mp4", limit=12)
    with FrameMasker(engine, "blur", mask=SETTINGS, streams=2) as both, \
            FrameMasker(engine, "blur", mask=SETTINGS) as only_a, FrameMasker(engine, "blur", mask=SETTINGS) as only_b:
        for frame_a, frame_b in zip(a, b, strict=True):
            assert np.array_equal(both(frame_a, stream=0).alpha, only_a(frame_a).alpha)
            assert np.array_equal(both(frame_b, stream=1).alpha, only_b(frame_b).alpha)
        with pytest.raises(ConfigError, match=r"stream 2 is not one of this masker's 2; give FrameMasker\(streams=3\)"):
            both(a[0], stream=2)


def test_a_failed_engine_call_gives_a_fully_masked_frame_never_a_raw_one(engine):
    need_shared()
    frames = read_frames(MEDIA / "carphone_pristine.mp4", limit=6)
    with FrameMasker(FlakyEngine(engine, fail_every=2), "fill", mode_options={"color": "0,0,0"}) as masker:
        results = [masker(image) for image in frames]
    assert [r.fully_masked for r in results] == [None, "engine_error"] * 3
    assert masker.privacy_counts == {"engine_error": 3, "late": 0, "reconnecting": 0}
    for result in results[1::2]:
        assert result.probability is None and not result.image.any()  # all of it filled black
    with FrameMasker(FlakyEngine(engine, fail_every=1), "fill", privacy=False) as open_masker, \
            pytest.raises(RuntimeError, match="injected engine failure"):
        open_masker(frames[0])  # without privacy the error is the caller's


def test_a_background_video_plays_on_the_times_given(engine, tmp_path):
    """``at`` places each frame in time: the background video's frame of that time is behind it."""
    need_shared()
    background = numbered_video(tmp_path / "bg.mkv", [k / 30 for k in range(30)], size_wh=(176, 144))
    frames = read_frames(MEDIA / "carphone_pristine.mp4", limit=4)
    with FrameMasker(engine, "replace", mode_options={"background": str(background)}) as masker:
        shown = []
        for k, image in enumerate(frames):
            result = masker(image, at=10.0 + k * 0.1)  # a 10 fps camera's clock, starting anywhere
            shown.append(frame_number(result.image[:12, :12]))  # a corner the person is not in
    assert shown == [0, 3, 6, 9]


def test_what_is_not_a_bgr_frame_is_refused(engine):
    with FrameMasker(engine) as masker:
        with pytest.raises(InputShapeError, match="uint8 HxWx3"):
            masker(np.zeros((48, 64), np.uint8))
        with pytest.raises(InputShapeError, match="uint8 HxWx3"):
            masker(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ConfigError, match="streams must be >= 1"):
        FrameMasker(engine, streams=0)
