"""Frame sources. One string picks the kind: :func:`open_source`.

Accepted forms (normalised to ``scheme://location`` and looked up in :data:`SOURCES`):

=====================================  ===========================================
``clip.mp4``, ``file://clip.mp4``      video file (anything OpenCV/FFmpeg reads, GIF too)
``frames/``, ``frames/*.png``          image folder or glob (``images://``)
=====================================  ===========================================

Example:
    >>> normalise_uri("frames/*.png")
    'images://frames/*.png'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engines.errors import SourceError
from realtime.capture.base import Source
from realtime.capture.files import ImageFolderSource, SourceNotFoundError, VideoFileSource

SOURCES: dict[str, Callable[..., Source]] = {
    "file": VideoFileSource,
    "images": ImageFolderSource,
}
FORMS_HELP = "a video file, an image folder or glob (frames/*.png)"


def normalise_uri(text: str) -> str:
    """Turn a user's source string into ``scheme://location``.

    Example:
        >>> normalise_uri("clip.gif")
        'file://clip.gif'
    """
    if "://" in text:
        return text
    if any(ch in text for ch in "*?[") or Path(text).is_dir():
        return f"images://{text}"
    if Path(text).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        return f"images://{text}"
    return f"file://{text}"


def open_source(text: str, **options: Any) -> Source:
    """Open a source from one string (see the module doc for the forms).

    Raises:
        SourceNotFoundError: a path that does not exist.
        SourceError: an unknown scheme or an unreadable source.
    """
    uri = normalise_uri(str(text))
    scheme, location = uri.split("://", 1)
    if scheme not in SOURCES:
        raise SourceError(f"unknown source scheme {scheme + '://'!r}; accepted: {FORMS_HELP}")
    return SOURCES[scheme](location, **options)


__all__ = ["SOURCES", "ImageFolderSource", "Source", "SourceNotFoundError", "VideoFileSource", "normalise_uri",
           "open_source"]
