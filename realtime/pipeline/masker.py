"""Masking one frame at a time, on the calling thread: :class:`FrameMasker`.

The engine, the mask post-processing and the compositor of a pipeline, without its capture, threads or outputs:
for a program that has frames of its own (its own decoder, a GStreamer appsink, a robot's camera driver) and wants
them back masked, with the same rules as ``realtime-mask run`` — each stream's moving average, the small-people
strategies, and fail-closed privacy (a frame whose mask cannot be trusted comes back fully masked, never raw).
:class:`~realtime.pipeline.Pipeline` masks every frame through one of these.

Example:
    >>> import numpy as np
    >>> with FrameMasker(mode="pixelate", mask=MaskSettings(dilate_px=8)) as masker:  # doctest: +SKIP
    ...     result = masker(np.zeros((720, 1280, 3), np.uint8))
    ...     print(result.image.shape, result.coverage, result.fully_masked)
    (720, 1280, 3) 0.0 None
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import engines
from engines.backends.base import Engine
from engines.errors import ConfigError
from engines.preprocess import frames_to_batch, probability_to_frame
from engines.strategies import InferenceStrategy, StrategySettings
from realtime.compositor import Compositor, MaskPostprocessor, MaskSettings, make_compositor
from realtime.frame import Frame
from realtime.pipeline.results import Result

log = logging.getLogger(__name__)
PRIVACY_REASONS = ("engine_error", "late", "reconnecting")  # why a frame is written fully masked


class FrameMasker:
    """Masks BGR frames: ``masker(image)`` is a :class:`~realtime.pipeline.Result` with the masked image.

    Args:
        model, mode: a model name (or path) and a masking mode, or an :class:`Engine` and a :class:`Compositor`
            already made (left open by :meth:`close`; what is made here is closed).
        mask: the mask post-processing; default: the mode's target, no smoothing, dilation or feather.
        mode_options: the mode's options (``{"block": 24}``, ``{"background": "beach.jpg"}``).
        privacy: fail closed (default: on when the mode hides people): a failed engine call gives fully
            masked frames instead of an error, smoothing never holds a mask back, the feather lies outside it.
        strategy: how each frame is covered (tiles, motion ROI, surveillance); None: the whole frame at once.
        streams: how many streams' frames it masks; each has its own moving average and strategy state.
        backend, device, precision, cache: how a model named here is loaded (:func:`engines.load`).

    Attributes:
        privacy_counts: frames written fully masked, by reason (``engine_error``, ``late``, ``reconnecting``).
    """

    def __init__(self, model: str | Engine = engines.DEFAULT_MODEL, mode: str | Compositor = "blur", *,
                 mask: MaskSettings | None = None, mode_options: dict[str, Any] | None = None,
                 privacy: bool | None = None, strategy: StrategySettings | None = None, streams: int = 1,
                 backend: str | None = None, device: str = "cpu", precision: str = "fp32",
                 cache: str | Path | None = None) -> None:
        if streams < 1:
            raise ConfigError(f"streams must be >= 1, got {streams}")
        self._owned: list[Any] = []
        try:
            self.compositor = mode if isinstance(mode, Compositor) else \
                self._own(make_compositor(mode, **(mode_options or {})))
            settings = mask or MaskSettings(target=self.compositor.default_target)
            hides_people = settings.target == "person" and self.compositor.name not in ("overlay", "mask")
            self.privacy = hides_people if privacy is None else privacy
            # privacy: smoothing may hold a mask on, never hold one back (a person walking in would be shown)
            self.mask_settings = dataclasses.replace(settings, fail_closed=settings.fail_closed or self.privacy)
            self._postprocess = [MaskPostprocessor(self.mask_settings) for _ in range(streams)]  # each its own EMA
            self.engine = model if isinstance(model, Engine) else self._own(
                engines.load(model, backend=backend, device=device, precision=precision, cache=cache))
            self.strategies: list[InferenceStrategy] | None = None
            if strategy is not None and (strategy.name != "full" or strategy.privacy_union_motion):
                self.strategies = [InferenceStrategy(self.engine, strategy) for _ in range(streams)]  # stateful
        except BaseException:
            self.close()
            raise
        self.streams = streams
        self.privacy_counts = dict.fromkeys(PRIVACY_REASONS, 0)
        self._next_index = [0] * streams

    def _own(self, thing: Any) -> Any:
        self._owned.append(thing)
        return thing

    def probabilities(self, frames: Sequence[Frame]) -> tuple[list[np.ndarray | None], dict[str, float]]:
        """Each frame's person probability, float32 at the frame's size, from one engine call (or the strategy's
        calls), and the ms per frame of ``preprocess``, ``inference`` and ``postprocess``.

        None for a placeholder (a frame made while a live source reconnects) and, with privacy, for every frame
        of a failed engine call (logged): such frames are to be written fully masked. Without privacy the
        error is raised.
        """
        real = [frame for frame in frames if not frame.placeholder]
        timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        if not real:
            return [None] * len(frames), timings
        t0 = time.perf_counter()
        try:
            if self.strategies is not None:  # its own batches (tiles, crops); timed as inference
                t1 = time.perf_counter()
                found = [self.strategies[frame.stream](frame.bgr) for frame in real]
                t2 = time.perf_counter()
            else:
                batch = frames_to_batch([frame.bgr for frame in real], self.engine.spec)
                t1 = time.perf_counter()
                probability = self.engine.infer(batch)
                t2 = time.perf_counter()
                found = [probability_to_frame(p[0], frame.bgr.shape[:2])
                         for p, frame in zip(probability, real, strict=True)]
        except Exception:
            if not self.privacy:
                raise
            log.exception("engine failed; %d frame(s) written fully masked (privacy)", len(real))
            return [None] * len(frames), timings
        t3 = time.perf_counter()
        n = len(real)
        timings = {"preprocess": (t1 - t0) * 1000.0 / n, "inference": (t2 - t1) * 1000.0 / n,
                   "postprocess": (t3 - t2) * 1000.0 / n}
        by_frame = {id(frame): p for frame, p in zip(real, found, strict=True)}
        return [by_frame.get(id(frame)) for frame in frames], timings

    def composite(self, frame: Frame, probability: np.ndarray | None, *, late: bool = False,
                  at: float | None = None,
                  gpu: Callable[[np.ndarray, np.ndarray, float, int], np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, str | None]:
        """``(alpha, masked image, why fully masked or None)`` for a frame and its probability.

        The frame is written fully masked, and counted, when it is a placeholder (``reconnecting``), has no
        probability (``engine_error``) or is ``late`` (its mask came after the pipeline's mask budget). ``at``:
        the frame's time in seconds, where a background video is behind it (default: its ``source_ts``);
        ``gpu``: a composite to run instead of the CPU reference (the GPU path's, same arguments).
        """
        at = frame.source_ts if at is None else at
        reason = "reconnecting" if frame.placeholder else "engine_error" if probability is None else \
            "late" if late else None
        if reason is not None:
            self.privacy_counts[reason] += 1
            alpha, image = self.fully_masked(frame, at)
            return alpha, image, reason
        assert probability is not None
        alpha = self._postprocess[frame.stream](probability)
        composite = gpu if gpu is not None else self.compositor.composite
        return alpha, composite(frame.bgr, alpha, at, frame.stream), None

    def fully_masked(self, frame: Frame, at: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fail closed: no trustworthy mask for this frame, so all of it is masked — ``(alpha, image)``."""
        alpha = np.ones(frame.bgr.shape[:2], np.float32)
        return alpha, self.compositor.composite(frame.bgr, alpha, frame.source_ts if at is None else at, frame.stream)

    def __call__(self, image: np.ndarray, stream: int = 0, at: float | None = None) -> Result:
        """Mask one uint8 HxWx3 BGR image of ``stream`` (0 .. ``streams`` - 1).

        ``at``: the frame's time in seconds on any clock that only goes forward (where a background video is
        behind it); default: now.

        Raises:
            InputShapeError: not a uint8 HxWx3 image.
            ConfigError: a stream this masker was not made for.
        """
        if not 0 <= stream < self.streams:
            raise ConfigError(f"stream {stream} is not one of this masker's {self.streams}; give "
                              f"FrameMasker(streams={stream + 1}) or more")
        now = time.monotonic()
        frame = Frame(self._next_index[stream], image, now if at is None else at, now, stream=stream)
        self._next_index[stream] += 1
        (probability,), timings = self.probabilities([frame])
        start = time.perf_counter()
        alpha, masked, reason = self.composite(frame, probability)
        timings["composite"] = (time.perf_counter() - start) * 1000.0
        return Result(frame, probability, alpha, masked, timings, written_ts=time.monotonic(), fully_masked=reason)

    def close(self) -> None:
        """Close what this masker made (the engine and compositor it loaded). Safe to call twice."""
        owned, self._owned = self._owned, []
        for thing in reversed(owned):
            thing.close()

    def __enter__(self) -> FrameMasker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
