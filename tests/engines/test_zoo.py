"""Fetching, caching and checksums of model files."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from engines import loader, zoo
from engines.errors import ChecksumError, ConfigError, FetchError, ModelNotFoundError


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError, match="mediapipe-selfie, mediapipe-selfie-landscape"):
        zoo.get_model("selfie-v9")


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "env"))
    assert zoo.cache_dir() == tmp_path / "env"
    assert zoo.cache_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv(zoo.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo.cache_dir() == tmp_path / "xdg" / "realtime-masking"


def test_fresh_fetch_extracts_both_models_with_checksums(tmp_path):
    try:
        path = zoo.fetch("mediapipe-selfie", tmp_path)
    except FetchError as exc:
        pytest.skip(f"PyPI not reachable: {exc}")
    assert zoo.sha256_file(path) == zoo.MODELS["mediapipe-selfie"].sha256
    landscape = zoo.model_path("mediapipe-selfie-landscape", tmp_path)
    assert zoo.sha256_file(landscape) == zoo.MODELS["mediapipe-selfie-landscape"].sha256
    assert not list(tmp_path.rglob("*.whl")), "the wheel must not stay in the cache"


def test_warm_cache_never_downloads(model_cache, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a cached model must not be downloaded again")

    monkeypatch.setattr(zoo, "download_wheel", no_network)
    for name in zoo.MODELS:
        assert zoo.fetch(name).is_file()


def test_corrupted_cache_entry_is_a_checksum_error(model_cache, tmp_path):
    target = zoo.model_path("mediapipe-selfie", tmp_path)
    target.parent.mkdir(parents=True)
    data = bytearray((model_cache / "models/mediapipe-selfie/selfie_segmentation.tflite").read_bytes())
    data[5000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="expected 9ee168ec"):
        zoo.fetch("mediapipe-selfie", tmp_path)


def test_url_model_is_checked_and_cached(model_cache, tmp_path):
    source = tmp_path / "served" / "selfie.tflite"
    source.parent.mkdir()
    shutil.copyfile(model_cache / "models/mediapipe-selfie/selfie_segmentation.tflite", source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="expected 0000"):
        zoo.fetch_url(source.as_uri(), "0" * 64, cache)
    assert not list(cache.rglob("*.tflite*")), "a failed download leaves nothing behind"
    first = zoo.fetch_url(source.as_uri(), digest, cache)
    source.unlink()  # the second call must be served from the cache
    assert zoo.fetch_url(source.as_uri(), digest, cache) == first
    resolved = loader.resolve(source.as_uri(), cache, sha256=digest)
    assert resolved.spec == zoo.MODELS["mediapipe-selfie"].spec, "a known file gets its MediaPipe spec"


def test_url_without_checksum_is_refused():
    with pytest.raises(ConfigError, match="--model-sha256"):
        loader.resolve("https://example.invalid/model.onnx")


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        loader.resolve(tmp_path / "nothing.onnx")
