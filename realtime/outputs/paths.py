"""Checks on output paths, done before any work starts so a bad path fails fast.

Example:
    >>> check_writable("/tmp/out.npz")
    PosixPath('/tmp/out.npz')
"""

from __future__ import annotations

import os
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
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"cannot write {path}: permission denied; choose a writable path")
    return path
