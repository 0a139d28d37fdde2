"""The ``.npz`` mask archive written by ``realtime-mask masks`` and ``run --save-masks``.

Format: one array ``masks``, uint8 ``[N, H, W]`` at the source resolution,
``round(255 * p)`` of the raw model probability — the format of
``../shared/reference``. The file is written on close (also after an error or
Ctrl-C) with every mask added so far, through a temporary file and a rename.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> with MaskArchive(path) as archive:
    ...     archive.add(np.full((2, 3), 0.5, np.float32))
    >>> np.load(path)["masks"].tolist()
    [[[128, 128, 128], [128, 128, 128]]]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.errors import InputShapeError, OutputError
from engines.preprocess import probability_to_uint8
from realtime.outputs.paths import check_writable


class MaskArchive:
    """Collects per-frame probabilities and writes them as one ``masks`` array."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_writable(path)
        if self.path.suffix.lower() != ".npz":
            raise OutputError(f"mask archive {self.path} must end in .npz (a NumPy archive, read with numpy.load)")
        self.masks: list[np.ndarray] = []
        self.closed = False

    def add(self, probability: np.ndarray) -> None:
        """Append one frame's probability (float HxW in [0, 1]) or an already uint8 mask."""
        mask = probability if probability.dtype == np.uint8 else probability_to_uint8(probability)
        if self.masks and mask.shape != self.masks[0].shape:
            raise InputShapeError(
                f"all masks in {self.path} must share one size; got {mask.shape} after {self.masks[0].shape} "
                "(the source changed resolution)"
            )
        self.masks.append(mask)

    def __len__(self) -> int:
        return len(self.masks)

    def close(self) -> None:
        """Write the archive (idempotent)."""
        if self.closed:
            return
        self.closed = True
        stacked = np.stack(self.masks) if self.masks else np.zeros((0, 0, 0), np.uint8)
        partial = self.path.with_name(self.path.name + ".part.npz")
        try:
            np.savez_compressed(partial, masks=stacked)
            partial.replace(self.path)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc

    def __enter__(self) -> MaskArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
