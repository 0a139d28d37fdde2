"""What every sink is: a context manager with one main method, ``write(image)``.

Example:
    >>> from realtime.outputs import open_sink
    >>> with open_sink("null") as sink:
    ...     sink.write(np.zeros((2, 2, 3), np.uint8))
"""

from __future__ import annotations

import logging
import urllib.parse
from abc import ABC, abstractmethod
from fractions import Fraction

import cv2
import numpy as np

from engines.errors import OutputError
from realtime.video_decoding import ColorTags

log = logging.getLogger(__name__)


def letterbox(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size_wh`` (width, height), its aspect kept, centred on black.

    Example:
        >>> letterbox(np.full((2, 4, 3), 255, np.uint8), (4, 4))[:, :, 0]
        array([[  0,   0,   0,   0],
               [255, 255, 255, 255],
               [255, 255, 255, 255],
               [  0,   0,   0,   0]], dtype=uint8)
    """
    width, height = size_wh
    rows, cols = image.shape[:2]
    scale = min(width / cols, height / rows)
    fit_w, fit_h = max(1, min(width, round(cols * scale))), max(1, min(height, round(rows * scale)))
    resized = cv2.resize(image, (fit_w, fit_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, *image.shape[2:]), image.dtype)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    out[top:top + fit_h, left:left + fit_w] = resized.reshape(fit_h, fit_w, *image.shape[2:])
    return out


def to_even_sides(bgr: np.ndarray) -> np.ndarray:
    """The frame with a copy of its last column or row added where its width or height is odd: 4:2:0 video (H.264,
    MPEG-4, Motion JPEG) takes even sides only, and OpenCV's writers and x264 in GStreamer would drop the odd one.

    Example:
        >>> to_even_sides(np.zeros((481, 853, 3), np.uint8)).shape
        (482, 854, 3)
    """
    height, width = bgr.shape[:2]
    if not (width % 2 or height % 2):
        return bgr
    return cv2.copyMakeBorder(bgr, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)


def square_pixels(image: np.ndarray, sample_aspect: Fraction | None) -> np.ndarray:
    """The image scaled in width to square pixels (an even width), for an output that cannot say its pixels are not
    square (a browser preview, a window, an RTSP stream, WebM): an anamorphic source shown as wide as it is.

    Example:
        >>> square_pixels(np.zeros((576, 720, 3), np.uint8), Fraction(64, 45)).shape
        (576, 1024, 3)
    """
    if sample_aspect is None:
        return image
    height, width = image.shape[:2]
    return cv2.resize(image, (max(2, round(width * sample_aspect / 2) * 2), height),
                      interpolation=cv2.INTER_AREA if sample_aspect < 1 else cv2.INTER_LINEAR)


class FirstSize:
    """Holds a stream of images to the size of its first (a video file, an RTSP stream, a mask archive): a later
    image of another size (a camera back at another resolution) is letterboxed into it, with one warning.

    Example:
        >>> sizer = FirstSize("masks", "mask")
        >>> [sizer.fit(np.zeros(shape, np.uint8)).shape for shape in [(4, 8), (8, 8)]], sizer.letterboxed
        ([(4, 8), (4, 8)], 1)
    """

    def __init__(self, where: str, what: str = "frame") -> None:
        self.where, self.what = where, what
        self.size: tuple[int, int] | None = None  # (width, height), once the first image came
        self.letterboxed = 0

    def fit(self, image: np.ndarray) -> np.ndarray:
        """``image``, or letterboxed into the first size."""
        size = (image.shape[1], image.shape[0])
        if self.size is None:
            self.size = size
        if size == self.size:
            return image
        if not self.letterboxed:
            log.warning("%s: %s size changed from %dx%d to %dx%d; later ones of another size are letterboxed into "
                        "%dx%d (write an image folder to keep every size)", self.where, self.what, *self.size, *size,
                        *self.size)
        self.letterboxed += 1
        return letterbox(image, self.size)


def split_viewer(address: str) -> tuple[tuple[str, str] | None, str]:
    """The viewer credentials a served output's address asks for (``viewer:secret@HOST:PORT``, each part
    URL-decoded), and the address without them; ``@:PORT`` alone is every interface, not credentials.

    Raises:
        OutputError: credentials without a user or a password.

    Example:
        >>> split_viewer("viewer:s%40cret@@:8554"), split_viewer("@:8554")
        ((('viewer', 's@cret'), '@:8554'), (None, '@:8554'))
    """
    credentials, at, rest = address.partition("@")
    if not (at and credentials):
        return None, address
    user, _, password = (urllib.parse.unquote(part) for part in credentials.partition(":"))
    if not (user and password):
        raise OutputError(f"viewer credentials need USER:PASSWORD@ before the host, got ***@{rest}")
    return (user, password), rest


def stop_noted() -> bool:
    """A stop signal came while the frame being written was held (an output waiting on a reader or a network must
    then give up waiting: a stop is never held by something outside the run).

    Example:
        >>> stop_noted()
        False
    """
    from realtime.pipeline.signals import STOP_NOTED  # the pipeline package imports this one

    return STOP_NOTED.is_set()


class Sink(ABC):
    """Writes masked frames somewhere. Closing finalises the output (playable file after errors/Ctrl-C).

    Attributes:
        uri: where it writes, credentials redacted.
        frames_written: how many frames it has taken.
        frames_letterboxed: frames of another size than the first, fitted into it (outputs of one size).
    """

    uri: str = ""
    frames_written: int = 0
    accepts_alpha: bool = False
    frame_limit: int | None = None  # the most frames it takes (one image: 1); None: any number
    live: bool = False  # its frames come from a live source (set by the pipeline): falling behind, it may skip some
    sample_aspect: Fraction | None = None  # the source's pixel shape where not square (set by the pipeline): stated
    color: ColorTags | None = None  # the source's colour tags where known (set by the pipeline): carried on
    _first_size: FirstSize | None = None

    def fit_to_first_size(self, image: np.ndarray) -> np.ndarray:
        """For an output that keeps one size (a video file, an RTSP stream): see :class:`FirstSize`."""
        if self._first_size is None:
            self._first_size = FirstSize(self.uri)
        return self._first_size.fit(image)

    @property
    def frames_letterboxed(self) -> int:
        return self._first_size.letterboxed if self._first_size is not None else 0

    @abstractmethod
    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        """Write one uint8 HxWx3 BGR (or HxWx4 BGRA where ``accepts_alpha``) image.

        ``capture_ts`` (the frame's monotonic capture time) lets live sinks report latency. ``present_ts`` is
        where the frame goes on the output's timeline, in seconds on any clock (``Frame.time_on``; a video
        file's first frame is at 0); None: after the last frame, one frame period (1 / fps) on.
        """

    def close(self) -> None:
        """Finalise the output. Safe to call twice."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
