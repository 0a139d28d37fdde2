"""Frames in, model tensors out; model probabilities in, frame-size masks out.

For the MediaPipe models this reproduces MediaPipe's own CPU graph:
ImageToTensorCalculator (``keep_aspect_ratio: false``, float range [0, 1],
``BORDER_ZERO``) warps the uint8 RGB frame with ``cv::warpPerspective`` using
a corner-aligned projection, then scales to [0, 1]; TensorsToSegmentation
resizes the probability back with ``cv::resize`` (bilinear).

Example:
    >>> import numpy as np
    >>> from engines.spec import ModelSpec
    >>> spec = ModelSpec(input_hw=(256, 256), resize="mediapipe")
    >>> batch = frames_to_batch([np.zeros((270, 480, 3), np.uint8)], spec, frame_color="bgr")
    >>> batch.shape, batch.dtype
    ((1, 3, 256, 256), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engines.errors import InputShapeError
from engines.spec import ModelSpec

FRAME_COLORS = ("bgr", "rgb")


def check_frame(frame: np.ndarray) -> None:
    """Raise :class:`InputShapeError` unless ``frame`` is a uint8 HxWx3 image."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = (frame.shape, str(frame.dtype)) if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InputShapeError(f"frame must be a uint8 HxWx3 (hwc) image, got {got}; convert with cv2.cvtColor first")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputShapeError(f"frame is empty ({frame.shape}); give an image of at least 1x1 pixels")


def _mediapipe_warp(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    frame_h, frame_w = rgb.shape[:2]
    src = np.array([[0, frame_h], [0, 0], [frame_w, 0], [frame_w, frame_h]], np.float32)
    dst = np.array([[0, height], [0, 0], [width, 0], [width, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def resize_frame(frame: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Resize one uint8 HWC frame to the model input the way ``spec.resize`` says."""
    height, width = spec.input_hw
    if frame.shape[:2] == (height, width):
        return frame
    if spec.resize == "mediapipe":
        return _mediapipe_warp(frame, height, width)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def frames_to_batch(frames: Sequence[np.ndarray], spec: ModelSpec, frame_color: str = "bgr") -> np.ndarray:
    """Turn uint8 HWC frames into one float32 model batch (NCHW or NHWC as the spec says).

    Args:
        frames: uint8 HxWx3 images (sizes may differ).
        spec: the model's spec (input size, color order, mean/std, layout, resize kind).
        frame_color: channel order of ``frames``, ``"bgr"`` (OpenCV) or ``"rgb"``.

    Returns:
        float32 array ``[N, 3, h, w]`` (or ``[N, h, w, 3]`` for NHWC models).
    """
    if frame_color not in FRAME_COLORS:
        raise InputShapeError(f"frame_color must be 'bgr' or 'rgb', got {frame_color!r}")
    swap = frame_color != spec.color
    resized = []
    for frame in frames:
        check_frame(frame)
        resized.append(resize_frame(frame, spec))
    plain = spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0)
    if plain and spec.layout == "nchw":  # one OpenCV call: channel swap, scale to [0, 1], HWC -> NCHW
        return cv2.dnn.blobFromImages(resized, scalefactor=1.0 / 255.0, swapRB=swap)
    batch = np.stack([cv2.cvtColor(r, cv2.COLOR_BGR2RGB) if swap else r for r in resized])
    out = batch.astype(np.float32) * np.float32(1.0 / 255.0)
    if not plain:
        out -= np.asarray(spec.mean, np.float32)
        out /= np.asarray(spec.std, np.float32)
    if spec.layout == "nchw":
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return out


def probability_to_frame(probability: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear-resize one model-resolution probability (h, w) to the frame's (H, W), float32.

    Example:
        >>> probability_to_frame(np.full((4, 4), 0.5, np.float32), (8, 6)).shape
        (8, 6)
    """
    probability = np.asarray(probability, np.float32)
    if probability.shape == tuple(frame_hw):
        return probability
    return cv2.resize(probability, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR)


def probability_to_uint8(probability: np.ndarray) -> np.ndarray:
    """``round(255 * p)`` as uint8 — the stored mask format of ``realtime-mask masks``.

    Example:
        >>> probability_to_uint8(np.array([0.0, 0.5, 1.0], np.float32)).tolist()
        [0, 128, 255]
    """
    return np.clip(np.rint(np.asarray(probability, np.float32) * 255.0), 0, 255).astype(np.uint8)
