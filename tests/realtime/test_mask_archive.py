"""The ``.npz`` mask archive (``masks``, ``run --save-masks``): whole after every mask, so nothing a run added is lost
to a kill, a full disk or a long run's final write."""

from __future__ import annotations

import logging
import shutil
import subprocess
import zipfile
import zlib

import cv2
import numpy as np
import pytest

from engines.errors import OutputError
from realtime.outputs.growing_npz import GrowingNpz, _times, _zeros_operator
from realtime.outputs.mask_archive import MaskArchive
from tests.common import SHARED, need_shared


def _reference_masks():
    need_shared()
    return np.load(SHARED / "reference" / "one-by-one-person-detection.model0.npz")["masks"]


def _assert_whole(path, expected):
    """numpy reads every frame; zip's own checks (CRC, sizes) pass in Python and, where installed, Info-ZIP."""
    np.testing.assert_array_equal(np.load(path)["masks"], np.asarray(expected).reshape(-1, *np.shape(expected)[1:]))
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["masks.npy"] and archive.testzip() is None
    if shutil.which("unzip"):
        checked = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0 and "No errors detected" in checked.stdout, checked.stdout + checked.stderr


@pytest.mark.parametrize("length", [0, 1, 3, 4096, 1_000_003])
def test_the_crc_of_a_header_and_its_frames_combines_as_zlib_computes_it_whole(length):
    rng = np.random.default_rng()
    header, frames = rng.bytes(128), rng.bytes(length)
    assert _times(_zeros_operator(length), zlib.crc32(header)) ^ zlib.crc32(frames) == zlib.crc32(header + frames)


def test_the_archive_is_whole_after_every_mask(tmp_path):
    """What a run killed outright leaves: read between any two masks, the archive holds every mask added so far."""
    reference = _reference_masks()[::4]
    path = tmp_path / "m.npz"
    with MaskArchive(path) as archive:
        for count, mask in enumerate(reference, 1):
            archive.add(mask)
            _assert_whole(path, reference[:count])
    _assert_whole(path, reference)


def test_an_archive_past_4_gb_is_read_whole(tmp_path):
    """Over 2,071 masks of a 1080p camera (about 70 s) is past 4 GiB uncompressed: ZIP64 sizes, checked to the CRC."""
    mask = cv2.resize(_reference_masks()[60], (1920, 1080))
    path = tmp_path / "m.npz"
    with GrowingNpz(path, "masks", mask.shape) as archive:
        for index in range(2100):
            mask[0, 0] = index % 256
            archive.append(mask)
    with zipfile.ZipFile(path) as opened, opened.open("masks.npy") as member:
        assert opened.getinfo("masks.npy").file_size == 128 + 2100 * 1920 * 1080 > 2**32
        header = np.lib.format.read_array_header_1_0(member) if np.lib.format.read_magic(member) else None
        assert header == ((2100, 1080, 1920), False, np.dtype(np.uint8))
        for index in range(2100):  # to the end, where zipfile checks the CRC
            frame = np.frombuffer(member.read(1920 * 1080), np.uint8).reshape(1080, 1920)
            assert frame[0, 0] == index % 256 and np.array_equal(frame[1:], mask[1:])
        assert member.read() == b""


def test_a_full_disk_leaves_the_archive_whole_and_it_goes_on_when_there_is_room(small_disk):
    """A mask the disk refused is not in the archive, and the masks after it (once there is room) are intact: the
    compressor's window must not hold the refused mask, or the same mask added again is stored as a reference to it."""
    rng = np.random.default_rng()
    masks = [rng.integers(0, 256, (100, 100), np.uint8) for _ in range(2)]  # 10 kB each: inside deflate's window
    path, tried = small_disk / "m.npz", []
    with MaskArchive(path) as archive:
        archive.add(masks[0])
        with open(small_disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
            while True:
                filler.write(rng.bytes(4096))
        with pytest.raises(OutputError, match="No space left on device; free space or write elsewhere"):
            for _ in range(50):  # the filesystem's last free bytes may take a few
                tried.append(rng.integers(0, 256, (100, 100), np.uint8))
                archive.add(tried[-1])
        written = [masks[0], *tried[:-1]]
        assert len(archive) == len(written)
        _assert_whole(path, written)
        (small_disk / "filler").unlink()
        archive.add(tried[-1])
        archive.add(masks[1])
    _assert_whole(path, [*written, tried[-1], masks[1]])


def test_mask_archive_round_trips_real_masks_and_leaves_nothing_beside(tmp_path):
    need_shared()
    from realtime.outputs.mask_archive import MaskArchive
    from tests.common import SHARED

    reference = np.load(SHARED / "reference" / "one-by-one-person-detection.model0.npz")["masks"]
    with MaskArchive(tmp_path / "m.npz") as archive:
        for mask in reference:
            archive.add(mask)
        archive.add(reference[0].astype(np.float32) / 255.0)  # a probability is rounded to round(255 p)
    assert len(archive) == len(reference) + 1
    masks = np.load(tmp_path / "m.npz")["masks"]
    np.testing.assert_array_equal(masks, np.concatenate([reference, reference[:1]]))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no spool or partial file left
    with MaskArchive(tmp_path / "m.npz"):
        pass  # no mask: the archive already there is left as it was
    np.testing.assert_array_equal(np.load(tmp_path / "m.npz")["masks"][:-1], reference)


def test_mask_archive_memory_stays_flat_on_a_long_run(tmp_path):
    """300 masks of a 1080p camera: 622 MB if they were held until the end; spooled, memory stays flat."""
    need_shared()
    import tracemalloc

    from realtime.outputs.mask_archive import MaskArchive
    from tests.common import SHARED

    reference = np.load(SHARED / "reference" / "one-by-one-person-detection.model0.npz")["masks"]
    masks = [cv2.resize(reference[i], (1920, 1080)) for i in range(60, 120, 6)]
    tracemalloc.start()
    try:
        with MaskArchive(tmp_path / "m.npz") as archive:
            for index in range(300):
                archive.add(masks[index % len(masks)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB"
    stored = np.load(tmp_path / "m.npz")["masks"]
    assert stored.shape == (300, 1080, 1920)
    np.testing.assert_array_equal(stored[::len(masks)], np.broadcast_to(masks[0], (30, 1080, 1920)))


def test_mask_archive_letterboxes_a_new_size(tmp_path, caplog):
    from realtime.outputs.mask_archive import MaskArchive

    with caplog.at_level(logging.WARNING), MaskArchive(tmp_path / "m.npz") as archive:
        archive.add(np.full((4, 8), 200, np.uint8))
        archive.add(np.full((8, 8), 100, np.uint8))  # square into 8x4: 4x4 in the middle
        archive.add(np.full((8, 8), 100, np.uint8))
    masks = np.load(tmp_path / "m.npz")["masks"]
    assert masks.shape == (3, 4, 8) and archive.letterboxed == 2
    assert (masks[1][:, 2:6] == 100).all() and not masks[1][:, :2].any() and not masks[1][:, 6:].any()
    assert sum("mask size changed from 8x4 to 8x8" in r.getMessage() for r in caplog.records) == 1
