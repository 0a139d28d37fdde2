"""The ``.npz`` mask archive written by ``realtime-mask masks`` and ``run --save-masks``.

Format: one array ``masks``, uint8 ``[N, H, W]`` at the source resolution,
``round(255 * p)`` of the raw model probability — the format of
``../shared/reference``. Memory stays flat however long the run: each mask is
compressed into a spool file beside the archive as it comes, and close() (also
after an error, Ctrl-C or SIGTERM) streams them into the ``.npz`` through a
temporary file and a rename. An archive with no masks is not written: a run
that fails before its first frame leaves an earlier run's archive as it was.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> with MaskArchive(path) as archive:
    ...     archive.add(np.full((2, 3), 0.5, np.float32))
    >>> np.load(path)["masks"].tolist()
    [[[128, 128, 128], [128, 128, 128]]]
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from engines.errors import OutputError
from engines.preprocess import probability_to_uint8
from realtime.outputs.base import FirstSize
from realtime.outputs.paths import check_writable

_LENGTH = 8  # bytes of each spooled record's length prefix


class MaskArchive:
    """Collects per-frame probabilities and writes them as one ``masks`` array.

    Masks of another size than the first (a camera back at another resolution) are letterboxed into it
    (:class:`~realtime.outputs.base.FirstSize`; ``letterboxed`` counts them).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = check_writable(path)
        if self.path.suffix.lower() != ".npz":
            raise OutputError(f"mask archive {self.path} must end in .npz (a NumPy archive, read with numpy.load)")
        self._first_size = FirstSize(str(self.path), "mask")
        self._count = 0
        try:  # an unnamed temporary file: nothing is left behind, even after a crash
            self._spool = tempfile.TemporaryFile(dir=self.path.parent, prefix=f".{self.path.name}.")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot write beside {self.path}: {exc.strerror}") from exc
        self.closed = False

    def add(self, probability: np.ndarray) -> None:
        """Append one frame's probability (float HxW in [0, 1]) or an already uint8 mask."""
        mask = probability if probability.dtype == np.uint8 else probability_to_uint8(probability)
        mask = self._first_size.fit(mask)
        record = zlib.compress(np.ascontiguousarray(mask).tobytes(), 1)
        try:
            self._spool.write(len(record).to_bytes(_LENGTH, "little") + record)
        except OSError as exc:
            raise OutputError(f"cannot keep the masks for {self.path}: {exc.strerror}; free space or write "
                              "elsewhere") from exc
        self._count += 1

    def __len__(self) -> int:
        return self._count

    @property
    def letterboxed(self) -> int:
        return self._first_size.letterboxed

    def close(self) -> None:
        """Write the archive (idempotent). With no mask added (a run that failed before its first frame) nothing is
        written, and an archive already at the path is left as it was."""
        if self.closed:
            return
        self.closed = True
        if not self._count:
            self._spool.close()
            return
        partial = self.path.with_name(self.path.name + ".part.npz")
        header = np.lib.format.header_data_from_array_1_0(np.zeros((0, 0, 0), np.uint8))
        size = self._first_size.size
        header["shape"] = (self._count, size[1], size[0]) if size else (0, 0, 0)
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
                    archive.open("masks.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                self._spool.seek(0)
                while length := int.from_bytes(self._spool.read(_LENGTH), "little"):
                    member.write(zlib.decompress(self._spool.read(length)))
            partial.replace(self.path)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}; free space or write elsewhere") from exc
        finally:
            partial.unlink(missing_ok=True)  # left only by a failure (after the rename there is none)
            self._spool.close()

    def __enter__(self) -> MaskArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
