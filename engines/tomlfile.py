"""Reading the project's TOML files (model specs, run configs, benchmark matrices) with one kind of error.

Example:
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.toml"
    >>> _ = f.write_text('mode = "blur"')
    >>> read_toml(f, "config")
    {'mode': 'blur'}
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engines.errors import ConfigError


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The parsed file, or a :class:`ConfigError` naming ``what`` it is and what is wrong."""
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not a text file ({exc.reason} at byte {exc.start}); give a TOML file") \
            from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc
