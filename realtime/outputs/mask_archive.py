"""The ``.npz`` mask archive written by ``realtime-mask masks`` and ``run --save-masks``.

Format: one array ``masks``, uint8 ``[N, H, W]`` at the source resolution,
``round(255 * p)`` of the raw model probability — the format of
``../shared/reference``. The archive is whole after every mask
(:class:`~realtime.outputs.growing_npz.GrowingNpz`): memory stays flat however
long the run, closing costs nothing, and a run killed outright leaves every mask
it added. An archive with no masks is not written: a run that fails before its
first frame leaves an earlier run's archive as it was. With ``--segment`` an
archive is cut where the stream's video is, a file per segment
(:mod:`realtime.outputs.segments`).

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> with MaskArchive(path) as archive:
    ...     archive.add(np.full((2, 3), 0.5, np.float32))
    >>> np.load(path)["masks"].tolist()
    [[[128, 128, 128], [128, 128, 128]]]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engines.errors import OutputError
from engines.preprocess import probability_to_uint8
from realtime.outputs.base import FirstSize
from realtime.outputs.growing_npz import GrowingNpz
from realtime.outputs.paths import check_writable
from realtime.outputs.segments import Segments


class MaskArchive:
    """Collects per-frame probabilities and writes them as one ``masks`` array.

    Masks of another size than the first (a camera back at another resolution) are letterboxed into it
    (:class:`~realtime.outputs.base.FirstSize`; ``letterboxed`` counts them).
    """

    def __init__(self, path: str | Path, segments: Segments | None = None) -> None:
        self.path = Path(path) if segments else check_writable(path)
        if self.path.suffix.lower() != ".npz":
            raise OutputError(f"mask archive {self.path} must end in .npz (a NumPy archive, read with numpy.load)")
        self.segments = segments
        self.count = 0  # masks added (over all segments)
        self._first_size = FirstSize(str(self.path), "mask")
        self._archive: GrowingNpz | None = None  # opened by the first mask
        self.closed = False

    def add(self, probability: np.ndarray, at: float | None = None, captured: float | None = None) -> None:
        """Append one frame's probability (float HxW in [0, 1]) or an already uint8 mask: in the file when this returns.
        With segments, ``at`` is the frame's time on its stream's clock and ``captured`` its capture time."""
        mask = probability if probability.dtype == np.uint8 else probability_to_uint8(probability)
        mask = self._first_size.fit(mask)
        if self.segments is not None and (begun := self.segments.next_file(
                time.monotonic() if at is None else at, captured, room=(2 << 20) + 4 * mask.nbytes)):
            self.close()
            self.path, self._archive, self.closed = begun, None, False
        try:
            if self._archive is None:
                self._archive = GrowingNpz(self.path, "masks", mask.shape)
            self._archive.append(mask)
            self.count += 1
        except OSError as exc:
            kept = f" (it holds the {len(self)} masks before)" if len(self) else ""
            raise OutputError(f"cannot write {self.path}: {exc.strerror}; free space or write elsewhere{kept}") from exc

    def __len__(self) -> int:
        return self._archive.count if self._archive else 0

    @property
    def letterboxed(self) -> int:
        return self._first_size.letterboxed

    def close(self) -> None:
        """Close the file (idempotent; the archive is whole already). With no mask added nothing was written, and an
        archive already at the path is left as it was."""
        self.closed = True
        if self._archive is not None:
            self._archive.close()

    def __enter__(self) -> MaskArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
