"""Image sinks: a folder of images (one per frame) and one image (a masked photo, a stream's snapshot).

Each image is encoded, written beside its place and renamed into it: whole or not at all, a full disk included.

Example:
    >>> with ImageFolderSink("/tmp/masked/", names=["IMG_0001.jpg", "IMG_0002.jpg"]) as sink:  # doctest: +SKIP
    ...     sink.write(first_bgr); sink.write(second_bgr)     # masked/IMG_0001.jpg, masked/IMG_0002.jpg
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from engines.errors import OutputError
from realtime.outputs.base import Sink
from realtime.outputs.paths import check_writable

log = logging.getLogger(__name__)

# the suffixes OpenCV writes, and those of them that hold an alpha channel (cutout's BGRA)
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALPHA_IMAGES = (".png", ".webp", ".tif", ".tiff")
_IMAGE_PARAMS = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95]}  # PNG, WebP: lossless


def write_image(path: Path, image: np.ndarray) -> None:
    """Write ``image`` (BGR or BGRA) to ``path`` in the format of its suffix (JPEG at quality 95), whole or not at all.

    Raises:
        OutputError: it cannot be encoded or written (a full disk: said so).

    Example:
        >>> write_image(Path("/tmp/one.png"), np.zeros((4, 6, 3), np.uint8)); cv2.imread("/tmp/one.png").shape
        (4, 6, 3)
    """
    suffix = path.suffix.lower()
    ok, encoded = cv2.imencode(suffix, image, _IMAGE_PARAMS.get(suffix, []))
    if not ok:
        raise OutputError(f"OpenCV could not encode {path}; write .png instead")
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(encoded.tobytes())
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)  # no truncated image left behind
        why = exc.strerror
        if exc.errno == errno.ENOSPC:
            why = f"the disk is full ({shutil.disk_usage(path.parent).free / 1e6:.1f} MB left)"
        raise OutputError(f"cannot write {path}: {why}; free space or write elsewhere") from exc


class ImageFolderSink(Sink):
    """One image per frame in a folder: lossless PNGs ``000000.png``, ... — or each named as its source image,
    ``names`` (a folder of photos masked into another under their own names and formats; a format without alpha
    becomes PNG for cutout's BGRA, one OpenCV does not write becomes PNG; names that would clash: numbered) —, or
    a ``%d`` pattern (``out/f_%05d.png``).

    Folders it made are removed on close if no frame came (a run that failed to start leaves none behind)."""

    accepts_alpha = True

    def __init__(self, target: str | Path, names: list[str] | None = None) -> None:
        text = str(target)
        if "%" in text:
            self.pattern = text
            folder = Path(text).parent
        else:
            folder = Path(text)
            self.pattern = str(folder / "%06d.png")
        self._made = [path for path in (folder, *folder.parents) if not path.exists()]  # the deepest first
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {folder}: {exc.strerror}; choose a writable path") from exc
        check_writable(folder / "probe.png")
        self.folder = folder
        self.uri = f"images://{self.pattern}"
        self.frames_written = 0
        self.names = None if "%" in text else names
        stems = [Path(name).stem for name in names or []]
        if self.names is not None and len(set(stems)) < len(stems):
            log.warning("%s: the source images' names clash (%s): numbered instead", folder,
                        next(stem for stem in stems if stems.count(stem) > 1))
            self.names = None

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        path = Path(self.pattern % self.frames_written)
        if self.names is not None and self.frames_written < len(self.names):
            name = Path(self.names[self.frames_written])
            suffix = name.suffix.lower()
            if suffix not in IMAGE_FORMATS or (image.ndim == 3 and image.shape[2] == 4 and suffix not in ALPHA_IMAGES):
                suffix = ".png"
            path = self.folder / (name.stem + suffix)
        write_image(path, image)
        self.frames_written += 1

    def close(self) -> None:
        if not self.frames_written:
            for made in self._made:
                with contextlib.suppress(OSError):  # not empty: something else was put there meanwhile
                    made.rmdir()
        self._made = []


class ImageFileSink(Sink):
    """One image (``masked.jpg``): the masked photo, or a snapshot of a stream's first frame (``--max-frames 1``).

    Written whole or not at all (encoded, written beside it, renamed over it). A second frame is an error: a
    run meant for every frame wants an image folder or a video file.

    Example:
        >>> with ImageFileSink("/tmp/masked.png") as sink:  # doctest: +SKIP
        ...     sink.write(masked_bgr)
    """

    frame_limit = 1

    def __init__(self, path: str | Path) -> None:
        self.path = check_writable(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in IMAGE_FORMATS:
            raise OutputError(f"cannot write an image as {self.path.suffix!r}; give one of {', '.join(IMAGE_FORMATS)}")
        self.accepts_alpha = self.suffix in ALPHA_IMAGES
        self.uri = f"image://{self.path}"
        self.frames_written = 0

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        if self.frames_written:
            raise OutputError(f"{self.path} is one image and a second frame came; write an image folder "
                              f"({self.path.with_suffix('')}/) or a video file for every frame, or give --max-frames 1")
        write_image(self.path, image)
        self.frames_written = 1
