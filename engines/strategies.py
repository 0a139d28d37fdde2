"""Inference strategies for small and distant people: full frame, tiles, motion ROIs, and the surveillance preset.

* ``full`` — one engine call on the whole frame (the model's training setting: people close up).
* ``tiles`` — an R x C grid of overlapping tiles (plus, optionally, the full frame) in one batch;
  tile probabilities are blended with weights that ramp down across each overlap, so a person
  crossing a border is masked without a seam. With C = 0 the columns are chosen so that each tile
  has the model's aspect ratio: a tile stretched to a square model input squeezes a person and the
  model misses it (on the far-people set, 3x3 tiles of a 16:9 frame found 79% of people, 3x5 98%).
* ``motion-roi`` — OpenCV's MOG2 background subtraction on a downscaled frame finds moving regions;
  crops around them (margin, minimum size, the model's aspect ratio) go through the engine as one
  batch and are pasted back. Every ``refresh_every`` frames a full pass catches people who stand
  still; frames with no motion reuse the last mask (counted as skipped).
* ``surveillance`` — our preset for fixed cameras: the tile grid, where only the tiles with motion
  are run again each frame (the others keep their last probability), all tiles and the full frame
  every ``refresh_every`` frames, and false-foreground control.

False-foreground control: regions (probability >= 0.5) smaller than ``min_region`` of the frame are
dropped, and with ``persistence`` a region must overlap the previous frame's mask or motion.
``privacy_union_motion`` also masks moving regions the model does not claim.

Example:
    >>> settings = StrategySettings(name="tiles", tiles=(2, 2))
    >>> [tuple(b) for b in tile_boxes(100, 200, 2, 2, 0.2)][:2]
    [(0, 56, 0, 111), (0, 56, 89, 200)]
    >>> grid_shape(432, 768, (3, 0), 0.25, aspect_wh=1.0)  # square model: columns to match
    (3, 6)
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from engines.backends.base import Engine
from engines.errors import ConfigError
from engines.preprocess import frames_to_batch

STRATEGIES = ("full", "tiles", "motion-roi", "surveillance")
Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (end-exclusive)


@dataclass(frozen=True)
class StrategySettings:
    """How a frame becomes one person probability.

    Args:
        name: one of :data:`STRATEGIES`.
        tiles: grid (rows, cols) for ``tiles``/``surveillance``; cols 0 = as many as give tiles the model's aspect.
        tile_overlap: overlap between neighbouring tiles as a fraction of the tile, in [0, 1).
        include_full: add the full frame to the tile batch (merged by maximum; ``surveillance``: on refresh frames).
        refresh_every: full/tiled pass every N frames in the motion strategies.
        roi_margin: crop margin around a moving region, as a fraction of its size.
        roi_min_px: smallest crop side in pixels.
        max_rois: most crops per frame; more moving regions are merged into their bounding box (one crop
            costs one model call, so 1 keeps motion-ROI no dearer than full-frame inference).
        min_region: drop mask regions smaller than this share of the frame.
        persistence: 1 = off; 2 = a region must overlap the previous frame's mask or motion.
        privacy_union_motion: also mask moving regions the model does not claim.
        confidence: probability a pixel needs to count as a person under this strategy; the output is
            rescaled monotonically so that this value lands on 0.5 (the pipeline's threshold).
    """

    name: str = "full"
    tiles: tuple[int, int] = (2, 0)
    tile_overlap: float = 0.2
    include_full: bool = True
    refresh_every: int = 15
    roi_margin: float = 0.3
    roi_min_px: int = 64
    max_rois: int = 1
    min_region: float = 0.0
    persistence: int = 1
    privacy_union_motion: bool = False
    confidence: float = 0.5

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.name!r}; choose one of {', '.join(STRATEGIES)}")
        rows, cols = self.tiles
        if rows < 1 or cols < 0 or rows * max(cols, 1) > 64:
            raise ConfigError(f"tiles must be RxC with R, C >= 1 (at most 64 tiles), got {rows}x{cols}")
        if not 0.0 <= self.tile_overlap < 1.0:
            raise ConfigError(f"tile overlap must be in [0, 1), got {self.tile_overlap}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"strategy confidence must be in (0, 1), got {self.confidence}")
        if self.max_rois < 1:
            raise ConfigError(f"max_rois must be >= 1, got {self.max_rois}")
        if self.refresh_every < 1 or self.persistence < 1 or self.roi_min_px < 8 or self.min_region < 0:
            raise ConfigError("refresh_every and persistence must be >= 1, roi_min_px >= 8, min_region >= 0")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> StrategySettings:
        """The tuned settings of a strategy name (``surveillance``: motion-gated tiles + false-foreground control)."""
        base: dict[str, Any] = {"name": name}
        if name == "surveillance":  # tuned on the far-people set (README: "Small and distant people")
            base.update(tiles=(3, 0), tile_overlap=0.25, include_full=True, refresh_every=10, min_region=0.0004,
                        persistence=2, confidence=0.3)
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def parse_tiles(text: str) -> tuple[int, int]:
    """``"2x3"`` -> (2, 3); ``"3"`` -> (3, 0): three rows, columns matched to the model's aspect; a clear error otherwise."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise ConfigError(f"--tiles takes R or RxC such as 3 or 2x4, got {text!r}")
    rows, cols = parts[0], parts[1] if len(parts) == 2 else 0
    if rows < 1 or (len(parts) == 2 and cols < 1):
        raise ConfigError(f"--tiles needs at least one row and one column, got {text!r}")
    return rows, cols


def _tile_span(size: int, count: int, overlap: float) -> float:
    return size / (count - (count - 1) * overlap) if count > 1 else float(size)


def grid_shape(height: int, width: int, tiles: tuple[int, int], overlap: float, aspect_wh: float) -> tuple[int, int]:
    """The grid for ``tiles``: as given, or with columns (when 0) that give tiles nearest the model's aspect ratio;
    never more rows or columns than the frame has pixels."""
    rows, cols = min(tiles[0], height), tiles[1]
    if cols:
        return rows, min(cols, width)
    tile_h = _tile_span(height, rows, overlap)
    best = min(range(1, 65 // rows + 1),
               key=lambda c: abs(math.log(_tile_span(width, c, overlap) / tile_h / aspect_wh)))
    return rows, min(best, width)


def tile_boxes(height: int, width: int, rows: int, cols: int, overlap: float) -> list[Box]:
    """Boxes of an R x C grid covering the frame, neighbours overlapping by ``overlap`` of a tile."""
    def spans(size: int, count: int) -> list[tuple[int, int]]:
        tile = _tile_span(size, count, overlap)
        step = tile * (1 - overlap)
        starts = [min(round(i * step), size - 1) for i in range(count)]
        return [(start, max(start + 1, min(size, round(i * step + tile)))) for i, start in enumerate(starts)]

    return [(y0, y1, x0, x1) for y0, y1 in spans(height, rows) for x0, x1 in spans(width, cols)]


def _ramp(length: int, start_ramp: int, end_ramp: int) -> np.ndarray:
    weights = np.ones(length, np.float32)
    if start_ramp > 0:
        weights[:start_ramp] = (np.arange(start_ramp, dtype=np.float32) + 0.5) / start_ramp
    if end_ramp > 0:
        weights[length - end_ramp:] = np.minimum(weights[length - end_ramp:],
                                                 (np.arange(end_ramp, 0, -1, dtype=np.float32) - 0.5) / end_ramp)
    return weights


@functools.lru_cache(maxsize=8)
def _tile_weights(boxes: tuple[Box, ...], height: int, width: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Each tile's blend weights (ramping down across its overlaps) and their per-pixel sum."""
    weights, total = [], np.zeros((height, width), np.float32)
    for y0, y1, x0, x1 in boxes:
        others = [b for b in boxes if b != (y0, y1, x0, x1)]
        ramp_y = max((max(0, min(y1, b[1]) - max(y0, b[0])) for b in others if b[2] < x1 and b[3] > x0), default=0)
        ramp_x = max((max(0, min(x1, b[3]) - max(x0, b[2])) for b in others if b[0] < y1 and b[1] > y0), default=0)
        wy = _ramp(y1 - y0, ramp_y if y0 > 0 else 0, ramp_y if y1 < height else 0)
        wx = _ramp(x1 - x0, ramp_x if x0 > 0 else 0, ramp_x if x1 < width else 0)
        weights.append(wy[:, None] * wx[None, :])
        total[y0:y1, x0:x1] += weights[-1]
    return weights, np.maximum(total, 1e-6)


def merge_tiles(probabilities: list[np.ndarray], boxes: list[Box], height: int, width: int) -> np.ndarray:
    """Blend tile probabilities (each at its box's size) into one frame: weights ramp across overlaps, no seams."""
    weights, weight_sum = _tile_weights(tuple(boxes), height, width)
    total = np.zeros((height, width), np.float32)
    for probability, w, (y0, y1, x0, x1) in zip(probabilities, weights, boxes, strict=True):
        total[y0:y1, x0:x1] += probability * w
    return total / weight_sum


def roi_box(x: int, y: int, w: int, h: int, frame_hw: tuple[int, int], aspect_wh: float, margin: float,
            min_px: int) -> Box:
    """A crop around a region: grown by ``margin``, at least ``min_px``, at the model's aspect ratio, inside the frame."""
    height, width = frame_hw
    cx, cy = x + w / 2, y + h / 2
    fw, fh = max(w * (1 + 2 * margin), float(min_px)), max(h * (1 + 2 * margin), float(min_px))
    if fw / fh < aspect_wh:
        fw = fh * aspect_wh
    else:
        fh = fw / aspect_wh
    fw, fh = min(fw, width), min(fh, height)
    x0 = round(min(max(cx - fw / 2, 0), width - fw))
    y0 = round(min(max(cy - fh / 2, 0), height - fh))
    return y0, y0 + round(fh), x0, x0 + round(fw)


TIMES_KEPT = 1 << 16  # the ms of a strategy's last calls kept (36 minutes of a 30 fps stream)


@dataclass
class StrategyStats:
    """Counters of a strategy over a run, in bounded memory: ``ms`` holds the last ``TIMES_KEPT`` calls' times (a
    list of every call's grew by 84 MB a day on a 30 fps camera: 32 MB per million calls, traced)."""

    frames: int = 0
    skipped: int = 0
    engine_crops: int = 0
    refreshes: int = 0
    ms: deque[float] = field(default_factory=lambda: deque(maxlen=TIMES_KEPT))


class InferenceStrategy:
    """Frame in, full-frame person probability out, by the chosen strategy (stateful: one per stream)."""

    motion_gate = 0.005  # surveillance: a tile runs again when this share of it moves
    motion_width = 160  # background subtraction runs on a copy about this wide

    def __init__(self, engine: Engine, settings: StrategySettings) -> None:
        self.engine, self.settings = engine, settings
        self.stats = StrategyStats()
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=16, detectShadows=False)
        self.last: np.ndarray | None = None
        self.previous: np.ndarray | None = None
        self.motion: np.ndarray | None = None
        self.tile_probabilities: list[np.ndarray] = []
        self.tiled: list[Box] = []  # the boxes those probabilities belong to (a new frame size starts over)
        self._boxes_for: tuple[tuple[int, int], list[Box]] = ((0, 0), [])
        self.full_probability: np.ndarray | None = None
        h, w = engine.spec.input_hw
        self.aspect_wh = w / h

    def _infer_crops(self, frame: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        crops = [frame[y0:y1, x0:x1] for y0, y1, x0, x1 in boxes]
        probability = self.engine.infer(frames_to_batch(crops, self.engine.spec))
        self.stats.engine_crops += len(crops)
        return [cv2.resize(p[0], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                for p, (y0, y1, x0, x1) in zip(probability, boxes, strict=True)]

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """This strategy's tile grid (rows, cols) on a frame of this size."""
        return grid_shape(height, width, self.settings.tiles, self.settings.tile_overlap, self.aspect_wh)

    def tile_boxes(self, height: int, width: int) -> list[Box]:
        """This strategy's tile boxes on a frame of this size (worked out once per size)."""
        if self._boxes_for[0] != (height, width):
            self._boxes_for = ((height, width), tile_boxes(height, width, *self.grid(height, width),
                                                           self.settings.tile_overlap))
        return self._boxes_for[1]

    def _tiles(self, frame: np.ndarray, only_moving: bool) -> np.ndarray | None:
        """Tiles (+ the full frame) merged; with ``only_moving``, just the tiles with motion run again (None: none did)."""
        height, width = frame.shape[:2]
        boxes = self.tile_boxes(height, width)
        if only_moving and self.tiled == boxes:
            assert self.motion is not None
            todo = [i for i, (y0, y1, x0, x1) in enumerate(boxes) if self.motion[y0:y1, x0:x1].mean() > self.motion_gate]
            if not todo:
                return None
            full = False
        else:
            todo, full = list(range(len(boxes))), self.settings.include_full
            self.tile_probabilities = [np.zeros((y1 - y0, x1 - x0), np.float32) for y0, y1, x0, x1 in boxes]
            self.tiled = boxes
        results = self._infer_crops(frame, [boxes[i] for i in todo] + ([(0, height, 0, width)] if full else []))
        for i, probability in zip(todo, results, strict=False):
            self.tile_probabilities[i] = probability
        if full:
            self.full_probability = results[-1]
        merged = merge_tiles(self.tile_probabilities, boxes, height, width)
        return np.maximum(merged, self.full_probability) if self.full_probability is not None else merged

    def _motion_boxes(self, frame: np.ndarray) -> list[Box]:
        """Update the motion mask (MOG2 on a ~192 px wide copy) and return crops around the moving regions."""
        height, width = frame.shape[:2]
        factor = max(1, round(width / self.motion_width))
        # bilinear at an integer factor: a fifth of INTER_AREA's cost, and MOG2 + opening absorb its aliasing
        small = cv2.resize(frame, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_LINEAR)
        foreground: np.ndarray = (self.subtractor.apply(small) > 127).astype(np.uint8)
        # close first: a slow walker's change is a thin sliver at each edge, which opening alone would erase
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        foreground = cv2.dilate(foreground, np.ones((3, 3), np.uint8))
        self.motion = cv2.resize(foreground, (width, height), interpolation=cv2.INTER_NEAREST)
        count, _, stats, _ = cv2.connectedComponentsWithStats(foreground)
        regions = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count]
                   if area * factor ** 2 >= 0.0002 * height * width]
        if len(regions) > self.settings.max_rois:  # merge by area order: the largest keep their own crop
            regions.sort(key=lambda r: (r[2] - r[0]) * (r[3] - r[1]), reverse=True)
            keep, rest = regions[: self.settings.max_rois - 1], regions[self.settings.max_rois - 1:]
            regions = [*keep, (min(r[0] for r in rest), min(r[1] for r in rest), max(r[2] for r in rest),
                               max(r[3] for r in rest))]
        sx, sy = width / small.shape[1], height / small.shape[0]  # the exact scale the motion mask was resized by
        return [roi_box(math.floor(x0 * sx), math.floor(y0 * sy), math.ceil((x1 - x0) * sx), math.ceil((y1 - y0) * sy),
                        (height, width), self.aspect_wh, self.settings.roi_margin, self.settings.roi_min_px)
                for x0, y0, x1, y1 in regions]

    def _control(self, probability: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """Drop regions under ``min_region`` of the frame and, with ``persistence``, regions touching neither the
        previous mask nor motion (their pixels are held just under 0.5)."""
        s = self.settings
        if s.min_region <= 0 and s.persistence <= 1:
            return probability
        binary = probability >= 0.5
        count, labels = cv2.connectedComponents(binary.view(np.uint8))  # (OpenCV's stats cost ten times the labels)
        keep = np.bincount(labels[binary], minlength=count) >= s.min_region * probability.size
        if s.persistence > 1 and previous is not None:
            anchored = previous >= 0.5
            if self.motion is not None:
                anchored |= self.motion > 0
            keep &= np.bincount(labels[anchored], minlength=count) > 0  # touches the previous mask or motion
        keep[0] = True  # background pixels keep their (sub-threshold) probability
        if keep.all():
            return probability
        dropped = ~keep[labels]
        out = probability.copy()
        out[dropped] = np.minimum(out[dropped], 0.49)
        return out

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The person probability (float32 HxW) of one uint8 BGR frame."""
        start = time.perf_counter()
        s, index = self.settings, self.stats.frames
        self.stats.frames += 1
        if self.last is not None and self.last.shape != frame.shape[:2]:  # a new frame size (e.g. a camera reconnect)
            self.last = self.previous = None
        refresh = self.last is None or index % s.refresh_every == 0
        moving = s.name in ("motion-roi", "surveillance") or s.privacy_union_motion or s.persistence > 1
        boxes = self._motion_boxes(frame) if moving else []
        probability: np.ndarray | None
        if s.name == "full":
            probability = self._infer_crops(frame, [(0, frame.shape[0], 0, frame.shape[1])])[0]
        elif s.name == "tiles":
            probability = self._tiles(frame, only_moving=False)
        elif s.name == "surveillance":
            self.stats.refreshes += refresh
            probability = self._tiles(frame, only_moving=not refresh)
            if probability is None:
                self.stats.skipped += 1
                probability = self.last
        elif refresh:  # motion-roi: a full pass (no crops: they would cost a second model call this frame)
            self.stats.refreshes += 1
            probability = self._infer_crops(frame, [(0, frame.shape[0], 0, frame.shape[1])])[0]
        elif boxes:
            assert self.last is not None and self.motion is not None
            probability = self.last.copy()  # still regions keep their mask; moving ones are found again
            for y0, y1, x0, x1 in boxes:  # moving regions lie in crops (only specks too small to crop keep theirs)
                probability[y0:y1, x0:x1][self.motion[y0:y1, x0:x1] > 0] = 0.0
            self._paste(probability, frame, boxes)
        else:
            self.stats.skipped += 1
            probability = self.last
        assert probability is not None
        self.last = probability  # raw, reused on frames without motion
        probability = self._control(self._rescale(probability), self.previous)
        self.previous = probability
        if s.privacy_union_motion and self.motion is not None:
            probability = np.maximum(probability, self.motion.astype(np.float32))
        self.stats.ms.append((time.perf_counter() - start) * 1000.0)
        return probability

    def _rescale(self, probability: np.ndarray) -> np.ndarray:
        """Map ``confidence`` to 0.5, piecewise linearly (0 and 1 stay where they are)."""
        c = self.settings.confidence
        if c == 0.5:
            return probability
        # two lines through (c, 0.5): the map is the lower of them when c < 0.5 (concave), the higher otherwise
        low = probability * np.float32(0.5 / c)
        high = probability * np.float32(0.5 / (1 - c))
        high += np.float32(0.5 - c * 0.5 / (1 - c))
        return np.minimum(low, high, out=low) if c < 0.5 else np.maximum(low, high, out=low)

    def _paste(self, canvas: np.ndarray, frame: np.ndarray, boxes: list[Box]) -> None:
        """Run the crops and paste them into ``canvas`` (in place) by maximum."""
        for probability, (y0, y1, x0, x1) in zip(self._infer_crops(frame, boxes), boxes, strict=True):
            np.maximum(canvas[y0:y1, x0:x1], probability, out=canvas[y0:y1, x0:x1])
