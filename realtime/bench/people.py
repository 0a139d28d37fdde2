"""A synthetic far-people set and the evaluation of inference strategies on it (``realtime-mask eval-people``).

People are cut out of the near clips in ``../shared/media`` with MediaPipe's own reference masks
(``../shared/reference``), scaled to a given share of the frame height and pasted, walking, onto
consecutive frames of a scene with no people (``car-detection.mp4``). Their ground-truth silhouettes
are the reference masks scaled and placed the same way.

Metrics per strategy: person recall (a person counts when >= 25% of its box is masked), mean
silhouette IoU, false foreground (masked share of the frame outside every person's box, grown by
10%), and milliseconds per frame.

Example:
    >>> dataset = build_far_people(Path("../shared"), (0.10, 0.20))  # doctest: +SKIP
    >>> evaluate(engine, dataset, StrategySettings.preset("surveillance"))["recall"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.backends.base import Engine
from engines.errors import SourceError
from engines.strategies import STRATEGIES, InferenceStrategy, StrategySettings
from realtime.capture.files import read_frames

PEOPLE_CLIPS = ("head-pose-face-detection-female-and-male.gif", "one-by-one-person-detection.mp4")
BACKGROUND = "car-detection.mp4"


@dataclass
class Person:
    """One pasted person in one frame: its box (y0, y1, x0, x1) and full-frame silhouette."""

    box: tuple[int, int, int, int]
    silhouette: np.ndarray


@dataclass
class Sequence:
    frames: list[np.ndarray]
    people: list[list[Person]]


def _cutouts(shared: Path, limit: int = 12) -> list[tuple[np.ndarray, np.ndarray]]:
    """(BGR crop, uint8 mask crop) of single people from the near clips, using MediaPipe's reference masks."""
    found = []
    for clip in PEOPLE_CLIPS:
        reference = np.load(shared / "reference" / f"{clip.rsplit('.', 1)[0]}.model0.npz")["masks"]
        frames = read_frames(shared / "media" / clip, len(reference))
        for index in range(0, len(frames), 7):
            mask = reference[index]
            count, labels, stats, _ = cv2.connectedComponentsWithStats((mask >= 128).astype(np.uint8))
            for label in range(1, count):
                x, y, w, h, area = stats[label]
                if area < 0.02 * mask.size or h < 40 or w > 1.3 * h:
                    continue  # too small, or not person-shaped (e.g. a blurred shoulder passing the lens)
                person = np.where(labels[y:y + h, x:x + w] == label, mask[y:y + h, x:x + w], 0).astype(np.uint8)
                found.append((frames[index][y:y + h, x:x + w].copy(), person))
            if len(found) >= limit * (PEOPLE_CLIPS.index(clip) + 1):
                break
    if not found:
        raise SourceError(f"no people found in {PEOPLE_CLIPS} with their reference masks")
    return found


def build_far_people(shared: Path, height_range: tuple[float, float], sequences: int = 4, frames: int = 30,
                     people: int = 3, seed: int = 0) -> list[Sequence]:
    """Sequences of background frames with ``people`` walkers each, heights in ``height_range`` of the frame."""
    rng = np.random.default_rng(seed)
    cutouts = _cutouts(shared)
    background = read_frames(shared / "media" / BACKGROUND, sequences * frames)
    height, width = background[0].shape[:2]
    out = []
    for s in range(sequences):
        walkers: list[dict[str, Any]] = []
        for _ in range(people):
            image, mask = cutouts[rng.integers(len(cutouts))]
            target_h = int(rng.uniform(*height_range) * height)
            scale = target_h / mask.shape[0]
            size = (max(4, int(mask.shape[1] * scale)), max(4, target_h))
            walkers.append({
                "image": cv2.resize(image, size, interpolation=cv2.INTER_AREA),
                "mask": cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR),
                "x": float(rng.uniform(0, width - size[0])), "y": int(rng.uniform(0.3 * height, height - size[1])),
                "dx": float(rng.uniform(-3, 3)),
            })
        sequence = Sequence([], [])
        for f in range(frames):
            frame = background[s * frames + f].copy()
            persons = []
            for walker in walkers:
                w, h = walker["mask"].shape[1], walker["mask"].shape[0]
                x = int(np.clip(walker["x"] + walker["dx"] * f, 0, width - w))
                y = walker["y"]
                alpha = walker["mask"][..., None].astype(np.float32) / 255.0
                region = frame[y:y + h, x:x + w].astype(np.float32)
                frame[y:y + h, x:x + w] = (alpha * walker["image"] + (1 - alpha) * region + 0.5).astype(np.uint8)
                silhouette = np.zeros((height, width), bool)
                silhouette[y:y + h, x:x + w] = walker["mask"] >= 128
                persons.append(Person((y, y + h, x, x + w), silhouette))
            sequence.frames.append(frame)
            sequence.people.append(persons)
        out.append(sequence)
    return out


def evaluate(engine: Engine, dataset: list[Sequence], settings: StrategySettings) -> dict[str, Any]:
    """Recall, silhouette IoU, false foreground and ms per frame of one strategy over the set."""
    found = total = 0
    ious, false_fg, skipped, inputs = [], [], 0, 0
    ms: list[float] = []
    for sequence in dataset:
        strategy = InferenceStrategy(engine, settings)
        for frame, persons in zip(sequence.frames, sequence.people, strict=True):
            masked = strategy(frame) >= 0.5
            allowed = np.zeros(masked.shape, bool)
            for person in persons:
                y0, y1, x0, x1 = person.box
                total += 1
                found += int(masked[y0:y1, x0:x1].mean() >= 0.25)
                union = (masked & person.silhouette).sum()
                ious.append(union / max((masked[y0:y1, x0:x1] | person.silhouette[y0:y1, x0:x1]).sum(), 1))
                gy, gx = int(0.1 * (y1 - y0)), int(0.1 * (x1 - x0))
                allowed[max(0, y0 - gy):y1 + gy, max(0, x0 - gx):x1 + gx] = True
            false_fg.append(float((masked & ~allowed).mean()))
        ms += strategy.stats.ms
        skipped += strategy.stats.skipped
        inputs += strategy.stats.engine_crops
    grid = {}
    if settings.name in ("tiles", "surveillance"):
        height, width = dataset[0].frames[0].shape[:2]
        grid = {"tiles": list(strategy.grid(height, width)), "tile_overlap": settings.tile_overlap}
    return {"strategy": settings.name, **grid, "people": total, "recall": found / max(total, 1),
            "silhouette_iou": float(np.mean(ious)) if ious else 0.0,
            "false_foreground_mean": float(np.mean(false_fg)), "false_foreground_p95": float(np.percentile(false_fg, 95)),
            "ms_per_frame_p50": float(np.median(ms)), "ms_per_frame_mean": float(np.mean(ms)), "skipped_frames": skipped,
            "model_inputs_per_frame": inputs / max(len(ms), 1)}


def time_strategies(engine: Engine, frames: list[np.ndarray], rounds: int = 1) -> list[dict[str, Any]]:
    """ms and model inputs per frame of every strategy's preset on real frames, the strategies interleaved frame by
    frame (the machine's slow and fast moments fall on each alike); each round is a new stream."""
    runs: dict[str, list[InferenceStrategy]] = {name: [] for name in STRATEGIES}
    for _ in range(rounds):
        strategies = {name: InferenceStrategy(engine, StrategySettings.preset(name)) for name in STRATEGIES}
        for frame in frames:
            for strategy in strategies.values():
                strategy(frame)
        for name, strategy in strategies.items():
            runs[name].append(strategy)
    rows = []
    for name, done in runs.items():
        ms = np.concatenate([s.stats.ms for s in done])
        crops = sum(s.stats.engine_crops for s in done)
        rows.append({"strategy": name, "frames": len(ms), "mean_ms": float(ms.mean()), "p50_ms": float(np.median(ms)),
                     "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
                     "skipped": sum(s.stats.skipped for s in done), "engine_crops": crops,
                     "model_inputs_per_frame": crops / len(ms)})
    return rows
