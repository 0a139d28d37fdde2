"""A one-array ``.npz`` that is whole after every append, so a run killed outright (kill -9, the OOM killer, a
container's stop timeout) leaves an archive ``numpy.load`` reads, with every frame appended before the kill.

Python's ``zipfile`` finishes a member only when it is closed; here the one member's deflate stream is
sync-flushed after each frame and followed by a final empty block, the central directory and the end records
(a fixed-size tail). The next append writes over that tail, then updates the ``.npy`` header's frame count (kept
in a stored block at a fixed place) and the CRC. A reader between the two sees the earlier count: still whole.
The CRC-32 of header + frames is combined from the frames' running CRC in GF(2) (zlib's ``crc32_combine``,
which Python's ``zlib`` does not expose), so an append costs what compressing its frame costs.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
    >>> with GrowingNpz(path, "masks", (2, 3)) as archive:
    ...     archive.append(np.ones((2, 3), np.uint8))
    ...     np.load(path)["masks"].shape
    (1, 2, 3)
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np

_POLYNOMIAL = 0xEDB88320  # CRC-32, reflected
_ZIP64 = 45  # "version needed": ZIP64
_FULL = 0xFFFFFFFF  # a 32-bit size or offset field whose value is in the ZIP64 extra field
_HEADER_SIZE = 128  # the .npy header, padded to this fixed size so its frame count can be rewritten in place
_FINAL_EMPTY_BLOCK = b"\x01\x00\x00\xff\xff"  # deflate: BFINAL=1, stored, length 0


def _times(matrix: list[int], vector: int) -> int:
    """A 32x32 GF(2) matrix (one int per column) times a 32-bit vector."""
    total, column = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[column]
        vector >>= 1
        column += 1
    return total


def _product(a: list[int], b: list[int]) -> list[int]:
    return [_times(a, column) for column in b]


def _zeros_operator(length: int) -> list[int]:
    """The GF(2) operator that advances a CRC-32 over ``length`` zero bytes (crc32_combine's shift)."""
    one_bit = [_POLYNOMIAL] + [1 << n for n in range(31)]
    operator = [1 << n for n in range(32)]  # identity
    power = _product(_product(one_bit, one_bit), _product(one_bit, one_bit))  # 4 bits
    power = _product(power, power)  # 8 bits: one byte
    while length:
        if length & 1:
            operator = _product(power, operator)
        length >>= 1
        if length:
            power = _product(power, power)
    return operator


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The .npy 1.0 header for ``shape``, padded to :data:`_HEADER_SIZE` bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                   "fortran_order": False, "shape": shape})
    header = buffer.getvalue()
    if len(header) > _HEADER_SIZE:
        raise ValueError(f"array shape {shape} too long for a {_HEADER_SIZE}-byte .npy header")
    text = header[10:-1] + b" " * (_HEADER_SIZE - len(header))  # magic, version and length; the text; "\n"
    return header[:8] + struct.pack("<H", len(text) + 1) + text + b"\n"


class GrowingNpz:
    """Appends equal frames to ``name`` (an array ``[N, *frame_shape]``) in the ``.npz`` at ``path``, whole after each.

    Args:
        path: the archive; created (or truncated) here.
        name: the array's name in the archive (``numpy.load(path)[name]``).
        frame_shape: each frame's shape; every appended frame must have it.
        dtype: each frame's dtype.

    Raises:
        OSError: the file cannot be created or written (a full disk): the archive stays as after the last append.
    """

    def __init__(self, path: str | Path, name: str, frame_shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> None:
        self.path, self.frame_shape, self.dtype = Path(path), tuple(frame_shape), np.dtype(dtype)
        self.count = 0
        self._member = f"{name}.npy".encode()
        self._frame_bytes = int(np.prod(self.frame_shape)) * self.dtype.itemsize
        self._shift = _zeros_operator(self._frame_bytes)  # advances a CRC over one frame
        self._frames_shift = [1 << n for n in range(32)]  # over every frame so far
        self._frames_crc = 0
        self._compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        self._compressed = 5 + _HEADER_SIZE  # bytes of the member's deflate stream, its final block not counted
        local = time.localtime()
        self._dos_time = (local.tm_hour << 11) | (local.tm_min << 5) | (local.tm_sec // 2)
        self._dos_date = max(local.tm_year - 1980, 0) << 9 | (local.tm_mon << 5) | local.tm_mday
        self._data_at = 30 + len(self._member) + 20  # the local header, its name and ZIP64 extra field
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed by close(); unbuffered: on disk at once
        try:
            stored = struct.pack("<BHH", 0, _HEADER_SIZE, _HEADER_SIZE ^ 0xFFFF)  # BFINAL=0, stored block
            self._write_at(0, self._local_header() + stored + self._header() + self._tail())
        except BaseException:
            self._file.close()
            raise

    def append(self, frame: np.ndarray) -> None:
        """Append one frame (of ``frame_shape`` and ``dtype``): on disk, in the archive, when this returns."""
        if frame.shape != self.frame_shape or frame.dtype != self.dtype:
            raise ValueError(f"frame must be {self.dtype} {self.frame_shape}, got {frame.dtype} {frame.shape}")
        data = np.ascontiguousarray(frame).tobytes()
        compressor = self._compressor.copy()  # its window must not hold a frame the file does not
        block = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        state = (self.count, self._compressed, self._frames_crc, self._frames_shift, compressor)
        self.count += 1
        self._compressed += len(block)
        self._frames_crc = zlib.crc32(data, self._frames_crc)
        self._frames_shift = _product(self._shift, self._frames_shift)
        end = self._data_at + state[1]
        try:
            self._write_at(end, block + self._tail())  # first the data and a directory that covers it ...
            self._write_at(self._data_at + 5, self._header())  # ... then the frame count in the .npy header
            self._write_at(0, self._local_header())
        except OSError:
            self.count, self._compressed, self._frames_crc, self._frames_shift, self._compressor = state
            self._restore(end)
            raise

    def _restore(self, end: int) -> None:
        """Put back the tail an append failed to replace (its bytes were on disk: writing them needs no new space)."""
        try:
            self._write_at(end, self._tail())
            self._file.truncate()
            self._write_at(self._data_at + 5, self._header())
            self._write_at(0, self._local_header())
        except OSError:
            pass  # the disk refused even that: the archive ends at the failed append

    def _write_at(self, offset: int, data: bytes) -> None:
        self._file.seek(offset)
        view = memoryview(data)
        while view:
            view = view[self._file.write(view) or 0:]

    def _header(self) -> bytes:
        return _npy_header(self.dtype, (self.count, *self.frame_shape))

    def _crc(self) -> int:
        return _times(self._frames_shift, zlib.crc32(self._header())) ^ self._frames_crc

    def _sizes(self) -> tuple[int, int]:
        """(uncompressed, compressed) size of the member, its final empty block included."""
        return _HEADER_SIZE + self.count * self._frame_bytes, self._compressed + len(_FINAL_EMPTY_BLOCK)

    def _local_header(self) -> bytes:
        size, compressed = self._sizes()
        return (struct.pack("<IHHHHHIIIHH", 0x04034B50, _ZIP64, 0, zlib.DEFLATED, self._dos_time, self._dos_date,
                            self._crc(), _FULL, _FULL, len(self._member), 20)
                + self._member + struct.pack("<HHQQ", 1, 16, size, compressed))

    def _tail(self) -> bytes:
        """The member's final empty block, the central directory and the ZIP64 and plain end records."""
        size, compressed = self._sizes()
        directory_at = self._data_at + compressed
        directory = (struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | _ZIP64, _ZIP64, 0, zlib.DEFLATED,
                                 self._dos_time, self._dos_date, self._crc(), _FULL, _FULL, len(self._member), 20, 0,
                                 0, 0, 0o100644 << 16, 0)
                     + self._member + struct.pack("<HHQQ", 1, 16, size, compressed))
        zip64_end_at = directory_at + len(directory)
        return (_FINAL_EMPTY_BLOCK + directory
                + struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, _ZIP64, _ZIP64, 0, 0, 1, 1, len(directory), directory_at)
                + struct.pack("<IIQI", 0x07064B50, 0, zip64_end_at, 1)
                + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), min(directory_at, _FULL), 0))

    def close(self) -> None:
        """Close the file (idempotent); the archive is already whole."""
        self._file.close()

    def __enter__(self) -> GrowingNpz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
