"""Segmentation engines: built-in models, converters and inference backends.

Example:
    >>> import engines
    >>> engine = engines.load("mediapipe-selfie")  # doctest: +SKIP
    >>> probability = engine.predict(frame_bgr)  # doctest: +SKIP
"""

import os

# Before cv2 loads: FFmpeg's and OpenCV's own log lines would break our one-line errors, which say
# what went wrong. `realtime-mask -v` turns OpenCV's log back on.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

from engines.backends.base import Engine
from engines.loader import BACKEND_LOADERS, ResolvedModel, load, resolve
from engines.spec import ModelSpec
from engines.zoo import DEFAULT_MODEL, MODELS

__all__ = ["BACKEND_LOADERS", "DEFAULT_MODEL", "MODELS", "Engine", "ModelSpec", "ResolvedModel", "load", "resolve"]
