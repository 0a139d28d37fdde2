"""The ``.npz`` mask archive written by ``realtime-mask masks`` and ``run --save-masks``.

Format: one array ``masks``, uint8 ``[N, H, W]`` at the source resolution,
``round(255 * p)`` of the raw model probability — the format of
``../shared/reference``. Memory stays flat however long the run: each mask is
compressed into a spool file beside the archive as it comes, and close() (also
after an error, Ctrl-C or SIGTERM) streams them into the ``.npz`` through a
temporary file and a rename.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> with MaskArchive(path) as archive:
    ...     archive.add(np.full((2, 3), 0.5, np.float32))
    >>> np.load(path)["masks"].tolist()
    [[[128, 128, 128], [128, 128, 128]]]
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from engines.errors import OutputError
from engines.preprocess import probability_to_uint8
from realtime.outputs.base import letterbox
from realtime.outputs.paths import check_writable

log = logging.getLogger(__name__)
_LENGTH = 8  # bytes of each spooled record's length prefix


class MaskArchive:
    """Collects per-frame probabilities and writes them as one ``masks`` array.

    Attributes:
        shape: (H, W) of the masks, fixed by the first; a later mask of another size is letterboxed into it.
        letterboxed: how many masks were (a camera back at another resolution).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = check_writable(path)
        if self.path.suffix.lower() != ".npz":
            raise OutputError(f"mask archive {self.path} must end in .npz (a NumPy archive, read with numpy.load)")
        self.shape: tuple[int, int] | None = None
        self.letterboxed = 0
        self._count = 0
        try:  # an unnamed temporary file: nothing is left behind, even after a crash
            self._spool = tempfile.TemporaryFile(dir=self.path.parent, prefix=f".{self.path.name}.")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot write beside {self.path}: {exc.strerror}") from exc
        self.closed = False

    def add(self, probability: np.ndarray) -> None:
        """Append one frame's probability (float HxW in [0, 1]) or an already uint8 mask."""
        mask = probability if probability.dtype == np.uint8 else probability_to_uint8(probability)
        shape = (mask.shape[0], mask.shape[1])
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            if not self.letterboxed:
                log.warning("%s: mask size changed from %dx%d to %dx%d (WxH); later masks of another size are "
                            "letterboxed into the first", self.path, *self.shape[::-1], *shape[::-1])
            self.letterboxed += 1
            mask = letterbox(mask, self.shape[::-1])
        record = zlib.compress(np.ascontiguousarray(mask).tobytes(), 1)
        try:
            self._spool.write(len(record).to_bytes(_LENGTH, "little") + record)
        except OSError as exc:
            raise OutputError(f"cannot keep the masks for {self.path}: {exc.strerror}; free space or write "
                              "elsewhere") from exc
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Write the archive (idempotent)."""
        if self.closed:
            return
        self.closed = True
        partial = self.path.with_name(self.path.name + ".part.npz")
        header = np.lib.format.header_data_from_array_1_0(np.zeros((0, 0, 0), np.uint8))
        header["shape"] = (self._count, *self.shape) if self.shape else (0, 0, 0)
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
                    archive.open("masks.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                self._spool.seek(0)
                while length := int.from_bytes(self._spool.read(_LENGTH), "little"):
                    member.write(zlib.decompress(self._spool.read(length)))
            partial.replace(self.path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path}: {exc.strerror}; free space or write elsewhere") from exc
        finally:
            self._spool.close()

    def __enter__(self) -> MaskArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
