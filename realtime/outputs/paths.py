"""Checks on output paths, done before any work starts so a bad path fails fast.

Example:
    >>> check_writable("/tmp/out.npz")
    PosixPath('/tmp/out.npz')
    >>> check_no_overwrites([("source", "in.mp4")], [("--output", "out.mp4"), ("--metadata", "out.jsonl")])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from engines.errors import OutputError


def check_writable(path: str | Path) -> Path:
    """Return ``path`` if a file can be created there, else raise :class:`OutputError`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist; create it or choose another path")
    _check_access(parent, path)
    return path


def check_creatable(path: str | Path) -> Path:
    """Return ``path`` if a file can be created there once its missing folders are made (a segment's dated folder),
    else raise :class:`OutputError`: the nearest existing folder above it is a file, or cannot be written.

    Example:
        >>> import tempfile
        >>> check_creatable(Path(tempfile.mkdtemp()) / "2026-11-30" / "cam.mp4").name
        'cam.mp4'
    """
    path = Path(path).expanduser()
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {path}: {existing} is a file, not a folder; choose another path")
    _check_access(existing, path)
    return path


def _check_access(folder: Path, path: Path) -> None:
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:  # a read-only mount (a container's volume, a snapshot)
            raise OutputError(f"cannot write {path}: {folder} is on a read-only file system; choose a writable path")
        raise OutputError(f"cannot write {path}: permission denied; choose a writable path")


def _same(a: Path, b: Path) -> bool:
    """One file (links followed), or one path when either does not exist yet."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_no_overwrites(reads: Sequence[tuple[str, str | Path]], writes: Sequence[tuple[str, str | Path]]) -> None:
    """Refuse, before anything is opened, a run that would write over what it reads or write two outputs to one path.

    Args:
        reads: ``(what, path)`` of each file or folder the run reads (a source video, a folder of source images).
        writes: ``(what, path)`` of each file or image folder the run writes.

    Raises:
        OutputError: the first clash, naming both sides (root would otherwise overwrite even a read-only input).
    """
    read_paths = [(what, Path(path)) for what, path in reads]
    seen: list[tuple[str, Path]] = []
    for what, raw in writes:
        path = Path(raw)
        for read_what, read_path in read_paths:
            if _same(path, read_path):
                raise OutputError(f"{what} {path} would write over the {read_what} {read_path}; choose another path")
        for other_what, other in seen:
            if _same(path, other):
                both = f"{what} {path} is given twice" if what == other_what else f"{other_what} and {what} both write {path}"
                raise OutputError(f"{both}; give each its own path")
        seen.append((what, path))
