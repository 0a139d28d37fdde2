"""The GPU stage's own logic (slots, batches, per-stream state, probabilities, timings) with the real model on real
clips, against the CPU path: run on the CPU with the kernels emulated (every CI run), and on a CUDA GPU where there is
one (``pytest -m gpu``; benchmarks/gpu_check.py runs them there)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.errors import BackendError, InputShapeError
from realtime.compositor import MaskPostprocessor, MaskSettings, make_compositor
from realtime.pipeline.gpu import GPU_STAGES, GpuStage
from tests.common import MEDIA, assert_images_close, need_shared


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.gpu)])
def gpu(request, torch_engine):
    """Where the GPU stage runs, as (engine, emulate): ``emulated`` on the CPU, ``cuda`` on a real GPU."""
    if request.param == "emulated":
        return torch_engine, True
    return request.getfixturevalue("cuda_torch_engine"), False


def _gpu_run(gpu, monkeypatch) -> list[str]:
    """Set up a `run` (or Pipeline) to take the GPU path: emulated ($REALTIME_MASK_EMULATE_GPU=1) or on CUDA; the
    extra flags it needs."""
    monkeypatch.setenv("REALTIME_MASK_EMULATE_GPU", "1" if gpu[1] else "0")
    return [] if gpu[1] else ["--device", "cuda"]


def _cpu_path(engine, frames, settings, mode, per_stream):
    """What the CPU pipeline makes of these frames: probability, then mask post-processing, then the mode."""
    posts = [MaskPostprocessor(settings) for _ in frames] if per_stream else [MaskPostprocessor(settings)] * len(frames)
    compositor = make_compositor(mode)
    probabilities = engine.predict_batch(frames)
    return [compositor.composite(frame, post(p)) for frame, post, p in zip(frames, posts, probabilities, strict=True)], \
        probabilities


def test_double_buffered_batches_match_the_cpu_path(gpu, torch_engine):
    need_shared()
    from realtime.capture.files import read_frames

    frames = read_frames(MEDIA / "carphone_pristine.mp4", 7)
    settings = MaskSettings(dilate_px=2, ema_alpha=0.6)
    stage = GpuStage(gpu[0], make_compositor("blur"), settings, max_batch=3, keep_probability=True, emulate=gpu[1])
    first, second = stage.submit(frames[0:3]), stage.submit(frames[3:6])
    with pytest.raises(BackendError, match="both GPU slots are in flight"):
        stage.submit(frames[6:7])
    results = [stage.collect(first)]
    third = stage.submit(frames[6:7])  # a partial batch in the slot just freed
    results += [stage.collect(second), stage.collect(third)]
    images = [image for batch in results for image in batch.images]
    probabilities = [p for batch in results for p in batch.probabilities]
    assert len(images) == 7 and all(image.shape == frames[0].shape for image in images)
    expected, expected_probabilities = _cpu_path(torch_engine, frames, settings, "blur", per_stream=False)
    assert_images_close(images, expected)
    for probability, reference in zip(probabilities, expected_probabilities, strict=True):
        assert probability.shape == reference.shape and np.abs(probability - reference).max() < 1e-3
    for batch in results:
        assert set(batch.timings_ms) == set(GPU_STAGES) and all(ms >= 0 for ms in batch.timings_ms.values())
    coverage = [share for batch in results for share in batch.coverage]  # counted on the device
    post = MaskPostprocessor(settings)
    expected_coverage = [np.count_nonzero(post(p)) / p.size for p in expected_probabilities]
    np.testing.assert_allclose(coverage, expected_coverage, atol=2e-3)
    assert max(coverage) > 0.05
    with pytest.raises(BackendError, match="nothing in flight"):
        stage.collect(third)


def test_a_new_frame_size_leaves_the_batch_in_flight_alone(gpu, torch_engine):
    """A batch of another size (a reconnected camera, a folder of photos) is submitted while one is in flight: the
    new slot gets buffers of the new size, the batch in flight keeps its own and comes back intact."""
    need_shared()
    import cv2

    from realtime.capture.files import read_frames

    frames = read_frames(MEDIA / "carphone_pristine.mp4", 4)
    small = [cv2.resize(frame, (88, 72), interpolation=cv2.INTER_AREA) for frame in frames[2:4]]
    stage = GpuStage(gpu[0], make_compositor("blur"), MaskSettings(), max_batch=2, emulate=gpu[1])
    first = stage.submit(frames[:2])
    second = stage.submit(small)
    got = stage.collect(first).images + stage.collect(second).images
    third = stage.submit(frames[2:3])  # and back to the first size
    got += stage.collect(third).images
    expected, _ = _cpu_path(torch_engine, [*frames[:2], *small, frames[2]], MaskSettings(), "blur", per_stream=True)
    assert [image.shape for image in got] == [image.shape for image in expected]
    assert_images_close(got, expected)


def test_one_frame_of_each_stream_keeps_each_streams_moving_average(gpu, torch_engine):
    """per_stream_state: batch position k is stream k, each with its own moving average."""
    need_shared()
    from realtime.capture.files import read_frames

    streams = [read_frames(MEDIA / clip, 4) for clip in ("carphone_pristine.mp4", "carphone_pristine.mp4")]
    streams[1] = [np.ascontiguousarray(frame[:, ::-1]) for frame in streams[1]]  # a second, mirrored camera
    settings = MaskSettings(ema_alpha=0.3)
    stage = GpuStage(gpu[0], make_compositor("mask"), settings, max_batch=2, per_stream_state=True, emulate=gpu[1])
    got: list[list[np.ndarray]] = [[], []]
    for k in range(4):
        images = stage.collect(stage.submit([streams[0][k], streams[1][k]])).images
        for s in range(2):
            got[s].append(images[s])
    for s in range(2):
        expected, _ = _cpu_path(torch_engine, streams[s], settings, "mask", per_stream=False)
        assert_images_close(got[s], expected)


def test_named_streams_keep_their_moving_average_wherever_they_sit_in_the_batch(gpu, torch_engine):
    """submit(frames, streams=ids): three cameras, batches in changing order, a camera missing from a batch (it dropped
    out) or in it twice — each camera's frames are averaged with its own earlier frames, in order."""
    need_shared()
    from realtime.capture.files import read_frames

    clip = read_frames(MEDIA / "carphone_pristine.mp4", 4)
    cameras = {"north": clip, "south": [np.ascontiguousarray(f[:, ::-1]) for f in clip],
               "east": [np.ascontiguousarray(f[::-1]) for f in clip]}
    settings = MaskSettings(ema_alpha=0.3)
    stage = GpuStage(gpu[0], make_compositor("mask"), settings, max_batch=3, per_stream_state=True, emulate=gpu[1])
    with pytest.raises(InputShapeError, match="the stream of each of the 2 frames"):
        stage.submit([clip[0], clip[0]], streams=["north"])
    # a camera missing from a batch; one with two consecutive frames in a batch (averaged in batch order)
    order = [["north", "south", "east"], ["east", "north"], ["south", "east", "east"], ["north", "north", "south"]]
    got: dict[str, list[np.ndarray]] = {name: [] for name in cameras}
    seen = dict.fromkeys(cameras, 0)
    for names in order:
        frames = []
        for name in names:
            frames.append(cameras[name][seen[name]])
            seen[name] += 1
        for name, image in zip(names, stage.collect(stage.submit(frames, streams=names)).images, strict=True):
            got[name].append(image)
    for name, images in got.items():
        expected, _ = _cpu_path(torch_engine, cameras[name][:len(images)], settings, "mask", per_stream=False)
        assert_images_close(images, expected)


def test_a_batch_costs_the_host_the_kernel_launches_of_one_frame(torch_engine):
    """Each kernel is launched once for the whole batch (its frames on the grid's z): 1 frame or 5, the same launches."""
    rng = np.random.default_rng()
    settings = MaskSettings(dilate_px=3, feather_px=2, ema_alpha=0.5)
    launches: dict[int, list[str]] = {}
    for n in (1, 5):
        stage = GpuStage(torch_engine, make_compositor("pixelate"), settings, max_batch=n, per_stream_state=True,
                         emulate=True)
        names: list[str] = []
        for slot in stage.slots:
            run = slot.kernels._launch

            def counted(name, config, *args, run=run, names=names):
                names.append(name)
                run(name, config, *args)

            counted.torch_device = run.torch_device  # type: ignore[attr-defined]
            slot.kernels._launch = counted
        stage.collect(stage.submit([rng.integers(1, 256, (40, 56, 3), np.uint8) for _ in range(n)]))
        launches[n] = names
    assert launches[5] == launches[1] == ["preprocess", "mask_from_probability", "row_prefix", "dilate", "feather_h",
                                          "feather_v", "pixelate_means", "composite_pixelate"]


def test_the_gpu_stage_refuses_a_cpu_engine_without_emulation(engine):
    with pytest.raises(BackendError, match="needs a CUDA engine"):
        GpuStage(engine, make_compositor("blur"), MaskSettings())


def test_frames_written_into_the_input_buffers_go_up_without_a_host_copy(gpu):
    """input_buffers(): decode straight into the next slot's pinned frames; collect(copy=False): views of the pinned
    output. Same images as the copying path."""
    need_shared()
    from realtime.capture.files import read_frames

    frames = read_frames(MEDIA / "carphone_pristine.mp4", 3)
    height, width = frames[0].shape[:2]
    engine, emulate = gpu
    copying = GpuStage(engine, make_compositor("pixelate"), MaskSettings(), max_batch=3, emulate=emulate)
    expected = copying.collect(copying.submit(frames)).images
    stage = GpuStage(engine, make_compositor("pixelate"), MaskSettings(), max_batch=3, emulate=emulate)
    buffers = stage.input_buffers(height, width)
    for buffer, frame in zip(buffers, frames, strict=True):
        np.copyto(buffer, frame)  # what a decoder writing into the buffer does
    ticket = stage.submit(buffers)
    assert all(np.shares_memory(b, stage.slots[ticket].host_in.numpy()) for b in buffers)
    images = stage.collect(ticket, copy=False).images
    assert all(np.shares_memory(image, stage.slots[ticket].host_out.numpy()) for image in images)
    for image, reference in zip(images, expected, strict=True):
        np.testing.assert_array_equal(image, reference)


def test_a_whole_run_through_the_gpu_loop_matches_the_cpu_run(gpu, tmp_path, monkeypatch):
    """`run` takes the pipeline's GPU loop (batches, two slots in flight, the last partial batch, saved masks, stage
    timings) — emulated on the CPU with $REALTIME_MASK_EMULATE_GPU=1, or on CUDA; its frames and masks match the plain
    CPU run's."""
    import json

    import cv2

    from realtime.cli import main

    need_shared()
    common = ["run", "--source", str(MEDIA / "carphone_pristine.mp4"), "--backend", "torch", "--mode", "pixelate",
              "--batch", "3", "--max-frames", "10"]
    runs = {}
    for name in ("cpu", "gpu"):
        extra = _gpu_run(gpu, monkeypatch) if name == "gpu" else []
        folder = tmp_path / name
        assert main([*common, *extra, "--output", str(folder / "%05d.png"), "--save-masks", str(tmp_path / f"{name}.npz"),
                     "--stats", str(tmp_path / f"{name}.json"), "--metadata", str(tmp_path / f"{name}.jsonl")]) == 0
        runs[name] = [cv2.imread(str(path)) for path in sorted(folder.glob("*.png"))]
    assert len(runs["gpu"]) == len(runs["cpu"]) == 10
    assert_images_close(runs["gpu"], runs["cpu"])
    masks = {name: np.load(tmp_path / f"{name}.npz")["masks"] for name in runs}
    assert masks["gpu"].shape == masks["cpu"].shape == (10, 144, 176)
    assert np.abs(masks["gpu"].astype(int) - masks["cpu"].astype(int)).max() <= 1
    stats = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in runs}
    assert stats["gpu"]["frames"] == stats["cpu"]["frames"] == 10
    coverage = {name: [json.loads(line)["coverage"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
                for name in runs}
    np.testing.assert_allclose(coverage["gpu"], coverage["cpu"], atol=2e-3)  # counted on the device on the GPU path
    # the GPU loop fuses post-processing into the composite: proof that this run took it
    assert stats["gpu"]["stages"]["postprocess"]["max_ms"] == 0.0 < stats["cpu"]["stages"]["postprocess"]["max_ms"]


@pytest.mark.parametrize("mode,options", [("blur", {}), ("pixelate", {"block": 9}), ("overlay", {}), ("mask", {}),
                                          ("cutout", {})])
def test_the_gpu_composite_of_a_host_made_mask_equals_the_cpu_reference(gpu, torch_engine, mode, options):
    """GpuComposite (the strategies' path on a CUDA engine): real frames, the real model's alpha, feathered so that it
    is fractional at the edges — bit for bit the mode's CPU reference when emulated, within ±1 on a GPU (where NVRTC
    may contract a multiply-add)."""
    need_shared()
    from realtime.capture.files import read_frames
    from realtime.pipeline.gpu import GpuComposite

    frames = read_frames(MEDIA / "head-pose-face-detection-female-and-male.gif", 2)
    post = MaskPostprocessor(MaskSettings(dilate_px=3, feather_px=2))
    composite = GpuComposite(make_compositor(mode, **options), emulate=gpu[1])
    reference = make_compositor(mode, **options)
    for frame, probability in zip(frames, torch_engine.predict_batch(frames), strict=True):
        alpha = post(probability)
        assert np.mean((alpha > 0) & (alpha < 1)) > 0  # fractional edges
        got, expected = composite(frame, alpha).astype(np.int32), reference.composite(frame, alpha).astype(np.int32)
        assert np.abs(got - expected).max() <= (0 if gpu[1] else 1)


def test_a_strategy_run_on_a_gpu_engine_composites_on_the_gpu(gpu, tmp_path, monkeypatch):
    """With --strategy the host makes the mask; on a GPU engine the composite then runs there, giving the CPU run's
    frames: exactly when emulated, within float rounding on a GPU (the engine's probability, the blend's FMA)."""
    import cv2

    from realtime.cli import main
    from realtime.pipeline.gpu import GpuComposite

    need_shared()
    calls = []
    composite = GpuComposite.__call__
    monkeypatch.setattr(GpuComposite, "__call__", lambda self, *args: calls.append(1) or composite(self, *args))
    runs = {}
    for name in ("cpu", "gpu"):
        extra = _gpu_run(gpu, monkeypatch) if name == "gpu" else []
        folder = tmp_path / name
        assert main(["run", "--source", str(MEDIA / "carphone_pristine.mp4"), "--backend", "torch", *extra,
                     "--strategy", "surveillance", "--max-frames", "12", "--output", str(folder / "%05d.png")]) == 0
        runs[name] = [cv2.imread(str(path)) for path in sorted(folder.glob("*.png"))]
    assert len(runs["gpu"]) == len(runs["cpu"]) == 12 == len(calls)  # the second run composited on the "GPU"
    from realtime.capture.files import read_frames

    source = read_frames(MEDIA / "carphone_pristine.mp4", 12)
    assert np.mean([np.mean(image != frame) for image, frame in zip(runs["cpu"], source, strict=True)]) > 0.05
    if not gpu[1]:
        for image, reference in zip(runs["gpu"], runs["cpu"], strict=True):
            np.testing.assert_array_equal(image, reference)
    assert_images_close(runs["gpu"], runs["cpu"])


def test_a_folder_of_mixed_sizes_through_the_gpu_loop_matches_the_cpu_run(gpu, torch_engine, tmp_path, monkeypatch):
    """Photos of two sizes in one folder, batch 3: the GPU loop splits a batch where the size changes (one GPU batch
    holds one size) and every frame comes out as on the CPU path — none written fully masked for it."""
    need_shared()
    import cv2

    from realtime.capture.files import read_frames
    from realtime.pipeline import Pipeline

    frames = read_frames(MEDIA / "carphone_pristine.mp4", 7)
    for k, frame in enumerate(frames):
        if k in (2, 4, 5):
            frame = cv2.resize(frame, (240, 200), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(tmp_path / f"{k:02d}.png"), frame)
    runs = {}
    for name in ("cpu", "gpu"):
        if name == "gpu":
            _gpu_run(gpu, monkeypatch)
        pipeline = Pipeline(str(tmp_path / "*.png"), gpu[0] if name == "gpu" else torch_engine, "fill", "null", batch=3)
        runs[name] = [result.image for result in pipeline]
        assert sum(pipeline.privacy_counts.values()) == 0
    assert [image.shape[:2] for image in runs["gpu"]] == [image.shape[:2] for image in runs["cpu"]] \
        == [(200, 240) if k in (2, 4, 5) else (144, 176) for k in range(7)]
    assert_images_close(runs["gpu"], runs["cpu"])


def test_an_engine_answering_nan_fails_the_batch_and_never_sticks_in_the_moving_average(gpu):
    """An fp16 engine that overflows answers NaN, which compares false with every threshold. The GPU stage fails
    such a batch as Engine.infer does on the CPU path (the pipeline then writes it fully masked), and the moving
    average does not keep the NaN: later frames are not masked for ever."""
    need_shared()
    import torch

    import engines
    from engines.errors import InferenceError
    from realtime.capture.files import read_frames

    frames = read_frames(MEDIA / "carphone_pristine.mp4", 8)
    engine = engines.load("mediapipe-selfie", backend="torch", device=gpu[0].device)  # its own weights to break
    weights = {name: value.clone() for name, value in engine.module.state_dict().items()}
    stage = GpuStage(engine, make_compositor("fill"), MaskSettings(ema_alpha=0.7), max_batch=2, emulate=gpu[1])
    with torch.no_grad():
        for parameter in engine.module.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(InferenceError, match="gave NaN or infinite values"):
        stage.collect(stage.submit(frames[0:2]))
    assert all(torch.isfinite(average.tensor).all() for average in stage.averages.values())
    engine.module.load_state_dict(weights)  # the engine answers again
    coverage = [share for k in range(2, 8, 2) for share in stage.collect(stage.submit(frames[k:k + 2])).coverage]
    assert coverage[-1] < 0.5, f"masked share of later frames {coverage}: the failure stuck in the moving average"


def test_a_background_video_plays_at_its_own_speed_on_the_gpu_loop_as_on_the_cpu(gpu, torch_engine, tmp_path,
                                                                                    monkeypatch):
    """The GPU loop (batches of 3, two streams in each) takes each frame's background frame by its time as the CPU path
    does: a 30 fps background behind a 10 fps clip shows every third frame, each stream from its own start."""
    from realtime.pipeline import Pipeline
    from tests.common import frame_number, numbered_video

    need_shared()
    background = str(numbered_video(tmp_path / "bg.mkv", [k / 30 for k in range(12)]))
    clip = str(MEDIA / "one-by-one-person-detection.mp4")
    shown = {}
    for name in ("cpu", "gpu"):
        if name == "gpu":
            _gpu_run(gpu, monkeypatch)
        with Pipeline([clip, clip], gpu[0] if name == "gpu" else torch_engine, "replace", None, batch=3,
                      mode_options={"background": background}, max_frames=6, save_masks=str(tmp_path / "m{stream}.npz")
                      ) as pipeline:
            # where the model is sure no one is: the background, on both paths
            shown[name] = [(r.frame.stream, frame_number(r.image[r.probability < 0.2])) for r in pipeline]
        if name == "gpu":  # post-processing fused into the composite: this run took the GPU loop
            assert pipeline.stats.as_dict()["stages"]["postprocess"]["max_ms"] == 0.0
    assert sorted(shown["gpu"]) == sorted(shown["cpu"]) == sorted((s, 3 * k % 12) for s in (0, 1) for k in range(6))
