"""Several streams in one pipeline: an output per stream, its sound, and GPU batches that hold one frame size.

Example:
    >>> one_per_stream("masked-{stream}.mp4", 2, "outputs", "--output")
    ['masked-0.mp4', 'masked-1.mp4']
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engines.errors import ConfigError
from realtime.capture import Source, VideoFileSource
from realtime.frame import Frame
from realtime.outputs import Sink, sink_path
from realtime.outputs.audio import audio_codec
from realtime.outputs.files import VIDEO_FORMATS

log = logging.getLogger(__name__)


def one_per_stream(value: Any, count: int, what: str, flag: str) -> list[Any]:
    """One output (sink, mask archive) per stream: a list of ``count``, or one value — with several streams a string
    with ``{stream}`` in it (filled with 0, 1, ...), ``null``, or None."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list | tuple) and len(value) == count:
        return list(value)
    if not isinstance(value, list | tuple) and (count == 1 or value is None or value == "null"):
        return [value] * count
    if isinstance(value, str) and "{stream}" in value:
        return [value.replace("{stream}", str(k)) for k in range(count)]
    got = f", got {len(value)}" if isinstance(value, list | tuple) else ""
    raise ConfigError(f"{count} sources need {count} {what}{got}: repeat {flag} once per source, or give one with "
                      f"{{stream}} in its name (e.g. masked-{{stream}}.mp4)")


def same_size_batches(items: list[tuple[Frame, float]]) -> list[list[tuple[Frame, float]]]:
    """A batch cut into batches of one frame size (a GPU batch holds one size): grouped by size when every stream's
    frames in it share one size (cameras of two resolutions: two batches), else cut where the size changes (a folder
    of photos, a camera back at another resolution), so each stream's frames stay in order.

    Example:
        >>> import numpy as np
        >>> frame = lambda stream, h: (Frame(0, np.zeros((h, 8, 3), np.uint8), 0.0, 0.0, stream=stream), 0.0)
        >>> [[f.stream for f, _ in run] for run in same_size_batches([frame(0, 4), frame(1, 6), frame(2, 4)])]
        [[0, 2], [1]]
    """
    sizes: dict[int, set[tuple[int, ...]]] = {}
    for frame, _ in items:
        sizes.setdefault(frame.stream, set()).add(frame.bgr.shape)
    if all(len(shapes) == 1 for shapes in sizes.values()):
        groups: dict[tuple[int, ...], list[tuple[Frame, float]]] = {}
        for item in items:
            groups.setdefault(item[0].bgr.shape, []).append(item)
        return list(groups.values())
    runs: list[list[tuple[Frame, float]]] = []
    for item in items:
        if runs and runs[-1][-1][0].bgr.shape == item[0].bgr.shape:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def audio_source(source: Source, output: str | Sink | None, copy: bool) -> str | None:
    """Where a stream's video-file output takes its sound from: with ``copy``, its video-file source (a source
    or an output that cannot give or hold sound is an error); without, None, and a source with sound says so."""
    writes_video = isinstance(output, str) and sink_path(output) is not None \
        and Path(output).suffix.lower() in VIDEO_FORMATS
    from_file = isinstance(source, VideoFileSource)
    if copy and not writes_video:
        raise ConfigError(f"--audio copy writes sound into a video file output (.mp4 .mov .mkv .avi), got {output}")
    if copy and not from_file:
        raise ConfigError(f"--audio copy takes the sound of a video file source; {source.uri} has none to give")
    codec = audio_codec(source.location) if writes_video and from_file else None  # type: ignore[attr-defined]
    if codec is None:
        if copy:
            log.warning("%s has no audio track; %s is written without sound", source.uri, output)
        return None
    if not copy:
        log.warning("%s has sound (%s); %s is written without it, as voices are personal data: --audio copy keeps "
                    "it", source.uri, codec, output)
        return None
    return source.location  # type: ignore[attr-defined]
