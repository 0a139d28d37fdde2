"""Segmentation engines: built-in models, converters and inference backends.

Example:
    >>> import engines
    >>> engine = engines.load("mediapipe-selfie")  # doctest: +SKIP
    >>> probability = engine.predict(frame_bgr)  # doctest: +SKIP
"""

import os

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # before cv2 loads: our errors say what FFmpeg would log

from engines.backends.base import Engine
from engines.loader import BACKEND_LOADERS, ResolvedModel, load, resolve
from engines.spec import ModelSpec
from engines.zoo import DEFAULT_MODEL, MODELS

__all__ = ["BACKEND_LOADERS", "DEFAULT_MODEL", "MODELS", "Engine", "ModelSpec", "ResolvedModel", "load", "resolve"]
