"""The project's error tree.

Every error a user can cause derives from :class:`MaskingError` and from the
matching Python built-in, so callers can catch either. The CLI turns a
``MaskingError`` into a one-line message and exit code 2.

Example:
    >>> from engines.errors import ModelNotFoundError, MaskingError
    >>> issubclass(ModelNotFoundError, (MaskingError, LookupError))
    True
"""

from __future__ import annotations


class MaskingError(Exception):
    """Base of every error this project raises on bad input or environment."""


class ModelNotFoundError(MaskingError, LookupError):
    """A model name, path or URL that names no model."""


class ChecksumError(MaskingError, ValueError):
    """A model file whose sha256 is not the expected one."""


class ModelFormatError(MaskingError, ValueError):
    """A model file that cannot be read, or whose inputs/outputs we cannot use."""


class UnsupportedOpError(ModelFormatError):
    """A model that uses an operator the converter does not cover."""


class FetchError(MaskingError, ConnectionError):
    """A model download that failed."""


class BackendError(MaskingError, RuntimeError):
    """An inference backend that is missing or cannot run the model here."""


class InferenceError(MaskingError, RuntimeError):
    """A model call that ran but gave no usable answer (NaN or infinite values)."""


class InputShapeError(MaskingError, ValueError):
    """Data handed to a stage whose shape or dtype is not what the stage takes."""


class SourceError(MaskingError, OSError):
    """A frame source that cannot be opened or read."""


class OutputError(MaskingError, OSError):
    """An output path or sink that cannot be written."""


class ConfigError(MaskingError, ValueError):
    """An option or config value out of range or of the wrong kind."""
