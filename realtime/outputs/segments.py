"""``--segment SECONDS``: a recording cut into files of that length, as a 24/7 camera's recordings are kept (a file
per hour to keep, move or delete; none growing for ever).

Each segment is a video file of its own (:class:`~realtime.outputs.files.VideoFileSink`: finalised when the next one
begins, playable after a kill up to about its last second), named by the local time of its first frame — when it
was captured (a camera), or its time in the recording (a file: its ``creation_time``, else the run's start, plus the
frame's place in it; see :attr:`Segments.origins`): the output's name may hold ``strftime`` fields
(``rec/%Y-%m-%d/cam1-%H%M%S.mp4``: folders made as needed), else the time is put before the suffix (``cam1.mp4`` →
``cam1-20261130-180000.mp4``); a name taken already (two segments in one second, an earlier run's file) gets ``-1``,
``-2``, …: no recording is written over. A segment ends at the first frame ``SECONDS`` after its first (on the
frame's own clock: a file's position, a camera's arrival time), so no frame is lost or written twice at a cut.

The run's ``--metadata`` lines and ``--save-masks`` archives are cut the same way, at the same frames (each stream of
one ``--metadata`` file on its own clock), beside the video: ``cam1-20261130-180000.jsonl`` holds the lines of
``cam1-20261130-180000.mp4``'s frames.

``--keep DURATION`` (``7d``, ``36h``, ``90m``, seconds) deletes the segments of the output's name whose whole span lies
further back than that from the new segment's time (a camera's: now) — an earlier run's too, known by the name alone
(:func:`segment_start`) —, each time a segment begins, and then the folders of the name's time fields left empty, so a
24/7 recorder keeps a fixed window instead of filling the disk; a disk that fills before the window does costs the
oldest segments, not the recording. Other files are never touched.

Example:
    >>> segment_name("rec/cam1.mp4", 0.0, time_struct=time.gmtime(0))
    'rec/cam1-19700101-000000.mp4'
    >>> segment_name("rec/%Y-%m-%d/cam1-%H%M%S.mp4", 0.0, time_struct=time.gmtime(0))
    'rec/1970-01-01/cam1-000000.mp4'
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from engines.errors import ConfigError, OutputError
from realtime.outputs.base import Sink
from realtime.outputs.files import VIDEO_FORMATS, VideoFileSink
from realtime.outputs.paths import check_creatable

log = logging.getLogger(__name__)


_wall_minus_monotonic = time.time() - time.monotonic()


def wall_clock(monotonic_ts: float) -> float:
    """``time.monotonic()`` seconds as seconds since the epoch, the same for every output's segment begun by one frame
    (so the video's and its metadata's names match); a clock set meanwhile (NTP at boot) is followed.

    Example:
        >>> abs(wall_clock(time.monotonic()) - time.time()) < 1.0
        True
    """
    global _wall_minus_monotonic
    now = time.time() - time.monotonic()
    if abs(now - _wall_minus_monotonic) > 1.0:
        _wall_minus_monotonic = now
    return monotonic_ts + _wall_minus_monotonic


def check_segments_writable(pattern: str | Path) -> None:
    """Raise :class:`~engines.errors.OutputError` now, before anything runs, when the segments of ``pattern`` could
    not be written: the nearest existing folder above the one a segment begun now would go in is read-only, or a
    file (the time-field folders below it are made as segments begin)."""
    check_creatable(segment_name(str(pattern), time.time()))


def check_segment(segment_s: float, files: list[Path] | None = None) -> None:
    """Raise :class:`ConfigError` unless ``segment_s`` is a number of seconds >= 1 (and, given the run's files to cut,
    there is one)."""
    if not 1.0 <= segment_s < math.inf:
        raise ConfigError(f"--segment must be a number of seconds >= 1, got {segment_s}")
    if files is not None and not files:
        raise ConfigError(f"--segment cuts video file outputs ({', '.join(VIDEO_FORMATS)}), --metadata and --save-masks "
                          "files; the run has none")


def segment_name(pattern: str, at: float, time_struct: time.struct_time | None = None) -> str:
    """The file name of a segment that begins at ``at`` (seconds since the epoch), from the output's name."""
    when = time_struct or time.localtime(at)
    if "%" in pattern:
        return time.strftime(pattern, when)
    path = Path(pattern)
    return str(path.with_name(f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S', when)}{path.suffix}"))


_NUMERIC_FIELDS = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}", "M": r"\d{2}",
                   "S": r"\d{2}", "j": r"\d{3}"}
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_keep(text: str | float) -> float:
    """Seconds from ``--keep``: a number of seconds, or one with ``s``, ``m``, ``h`` or ``d`` after it.

    Example:
        >>> parse_keep("7d"), parse_keep("36h"), parse_keep("90m"), parse_keep("600")
        (604800.0, 129600.0, 5400.0, 600.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"--keep must be a duration > 0 such as 7d, 36h, 90m or 600 (seconds), got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _name_format(pattern: str) -> tuple[str, str, str]:
    """The ``strftime`` format of a segment's name (the output's own, or the time put before its suffix), the regex
    of such a name before its suffix, and a glob of them all (a ``-N`` added to a name taken already included)."""
    path = Path(pattern)
    fmt = pattern if "%" in pattern else str(path.with_name(f"{path.stem}-%Y%m%d-%H%M%S{path.suffix}"))
    stem, suffix = os.path.splitext(fmt)
    regex = wildcard = ""
    fields = set(re.findall(r"%(.)", stem.replace("%%", "")))
    if not ({"Y", "y"} & fields and ({"m", "d"} <= fields or "j" in fields) and {"H", "M", "S"} <= fields):
        raise ConfigError(f"--keep tells segments by the date and time in their names: {pattern} needs %Y, %m, %d (or "
                          "%j), %H, %M and %S (rec/%Y-%m-%d/cam-%H%M%S.mp4), or no time field at all (the time is added)")
    for literal, field in re.findall(r"([^%]*)(%.?)?", stem):
        regex, wildcard = regex + re.escape(literal), wildcard + glob.escape(literal)
        if field == "%%":
            regex, wildcard = regex + "%", wildcard + "%"
        elif field:
            if field[1:] not in _NUMERIC_FIELDS:
                raise ConfigError(f"--keep tells segments by the time in their names, which must be numbers "
                                  f"({' '.join('%' + f for f in _NUMERIC_FIELDS)}); {pattern} has {field}")
            regex, wildcard = regex + _NUMERIC_FIELDS[field[1:]], wildcard + "*"
    return fmt, regex, wildcard + "*" + glob.escape(suffix)


def segment_start(pattern: str, name: str) -> tuple[float, int] | None:
    """When a segment of the output ``pattern`` named ``name`` began (seconds since the epoch, from the local time in
    its name) and its place among the segments of that second (0, then the ``N`` of a ``-N`` added to a name taken
    already), or None when ``name`` is not one of its segments.

    Raises:
        ConfigError: the name lacks its date and time as numbers (``%Y``, ``%m``, ``%d`` or ``%j``, ``%H``, ``%M``,
            ``%S``), or has another time field (``%b``): its segments cannot be dated.

    Example:
        >>> start, number = segment_start("rec/%Y-%m-%d/cam1-%H%M%S.mp4", "rec/2026-11-30/cam1-180000-12.mp4")
        >>> time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)), number
        ('2026-11-30 18:00:00', 12)
        >>> segment_start("rec/%Y-%m-%d/cam1-%H%M%S.mp4", "rec/2026-11-30/notes.mp4") is None
        True
        >>> segment_start("rec/cam1.mp4", "rec/cam1-20261130-180000.mp4") == (start, 0)  # a name without time fields
        True
    """
    fmt, regex, _ = _name_format(pattern)
    suffix = os.path.splitext(fmt)[1]
    match = re.fullmatch(f"({regex})(?:-(\\d+))?{re.escape(suffix)}", name)
    if match is None:
        return None
    try:
        return time.mktime(time.strptime(match.group(1) + suffix, fmt)), int(match.group(2) or 0)
    except ValueError:  # digits that are no date (month 13)
        return None


class Segments:
    """The files of one output cut in time (see the module doc): which frame begins the next, its name, and ``--keep``'s
    deletions. The video outputs, ``--metadata`` and ``--save-masks`` each have one.

    Raises:
        ConfigError: a segment length that is not a number of seconds >= 1, a keep window under one segment, or (with
            ``keep_s``) a name whose segments cannot be dated.
        OutputError: a folder of the name that cannot be written (read-only, a file in the way).

    Example:
        >>> import tempfile
        >>> segments = Segments(os.path.join(tempfile.mkdtemp(), "meta.jsonl"), segment_s=60)
        >>> first = segments.next_file(at=0.0)  # the first frame begins the first file
        >>> segments.next_file(at=59.9) is None, segments.next_file(at=60.0) is None  # a new one 60 s on
        (True, False)
    """

    def __init__(self, pattern: str | Path, segment_s: float, keep_s: float | None = None) -> None:
        check_segment(segment_s)
        if keep_s is not None:
            if not segment_s <= keep_s < math.inf:
                raise ConfigError(f"--keep must be at least one segment ({segment_s:g} s), got {keep_s:g} s")
            _name_format(str(pattern))  # a name whose segments cannot be dated is refused now
        self.pattern, self.segment_s, self.keep_s = str(pattern), segment_s, keep_s
        check_segments_writable(self.pattern)
        self.files: list[Path] = []  # the segments begun, oldest first
        # per clock (a stream), seconds since the epoch at its 0 where the frames' own clock is the time to name them
        # by (a file: when it was recorded, or when the run began); None: the frames' capture times (live sources)
        self.origins: list[float | None] = []
        self.deleted = 0  # old segments deleted (--keep)
        self._made_room = False  # a segment was deleted for room on a full disk (said once, then logged)
        self._begun: dict[int, float] = {}  # when the current segment's first frame of each clock was

    def next_file(self, at: float, captured: float | None = None, clock: int = 0, room: int = 0) -> Path | None:
        """The file that a frame at ``at`` (seconds on the frames' clock; several clocks — the streams of one
        ``--metadata`` — each cut on their own) begins, or None when the frame goes in the current file. It is named
        by the clock's origin plus ``at`` where :attr:`origins` has one (a file: the time in the recording), else by
        when the frame was captured (``time.monotonic()``; None: now); its folders are made, and the segments
        further back than the keep window from it deleted first (``--keep``). With ``--keep``, ``room`` bytes are
        kept free for the frame (:meth:`make_room`)."""
        begun = self._begun.setdefault(clock, at)
        if self.files and at - begun < self.segment_s:
            self.make_room(room)
            return None
        self._begun = {clock: at}
        origin = self.origins[clock] if clock < len(self.origins) else None
        named = origin + at if origin is not None else time.time() if captured is None else wall_clock(captured)
        if self.keep_s is not None:
            self._delete_old(named - self.keep_s - self.segment_s)
        first = name = Path(segment_name(self.pattern, named))
        taken = 0
        while name in self.files or name.exists():  # two segments in one second, or an earlier run's: kept
            taken += 1
            name = first.with_name(f"{first.stem}-{taken}{first.suffix}")
        try:
            name.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create folder {name.parent} for {name.name}: {exc.strerror}") from exc
        self.files.append(name)
        log.info("recording into %s", name)
        self.make_room(room)
        return name

    def _segments(self) -> list[tuple[float, str]]:
        """When each of the output's segments on disk began (an earlier run's too) and its name, oldest first; not the
        one being written."""
        wildcard = _name_format(self.pattern)[2]
        found = [(start, name) for name in glob.glob(wildcard)
                 if (start := segment_start(self.pattern, name)) is not None and Path(name) not in self.files[-1:]]
        return [(start[0], name) for start, name in sorted(found)]

    def _delete(self, name: str) -> bool:
        """Delete one segment, then the folders of the name's time fields that this left empty."""
        try:
            os.unlink(name)
        except OSError as exc:
            log.warning("cannot delete the segment %s (--keep): %s", name, exc.strerror)
            return False
        self.deleted += 1
        fixed = Path(os.path.dirname(self.pattern.split("%", 1)[0]))  # the folders above the first time field
        folder = Path(name).parent
        while len(folder.parts) > len(fixed.parts):
            try:
                folder.rmdir()
            except OSError:  # not empty (other files, other segments), or not ours to remove
                break
            folder = folder.parent
        return True

    def _delete_old(self, before: float) -> None:
        """Delete the segments that began before ``before`` (their span over by the keep window)."""
        for start, name in self._segments():
            if start < before and self._delete(name):
                log.info("deleted %s: older than --keep", name)

    def make_room(self, need: int) -> None:
        """With ``--keep``, a disk nearly full before the keep window is costs the oldest segments, not the recording:
        deleted, oldest first, while less than ``need`` bytes are free beside the current segment."""
        if self.keep_s is None or not self.files or need <= 0:
            return
        folder = self.files[-1].parent
        if shutil.disk_usage(folder).free >= need:
            return
        for _, name in self._segments():
            if not self._delete(name):
                continue
            (log.warning if not self._made_room else log.info)(
                "the disk of %s is nearly full: deleted its oldest segment %s, inside the --keep window, to go on",
                self.files[-1], name)
            self._made_room = True
            if shutil.disk_usage(folder).free >= need:
                return


def segments_for(path: str | Path | None, segment_s: float | None, keep_s: float | None) -> Segments | None:
    """The :class:`Segments` of a ``--metadata`` or ``--save-masks`` file when the run has ``--segment``, else None
    (standard output is never cut)."""
    if path is None or segment_s is None or str(path) == "-":
        return None
    return Segments(path, segment_s, keep_s)


class SegmentedVideoSink(Sink):
    """A video file output cut into segments of ``segment_s`` seconds (see the module doc).

    Raises:
        ConfigError: a segment length that is not a number of seconds >= 1 (see :class:`Segments`).
    """

    def __init__(self, pattern: str, fps: float = 25.0, segment_s: float = 3600.0, keep_s: float | None = None) -> None:
        self.segments = Segments(pattern, segment_s, keep_s)
        video_format = VIDEO_FORMATS.get(Path(pattern).suffix.lower())
        if video_format is None:
            raise OutputError(f"--segment cuts video files ({', '.join(VIDEO_FORMATS)}), not {pattern}")
        self.accepts_alpha = video_format.alpha_pix_fmt is not None
        self.pattern, self.fps = pattern, fps
        self.uri = f"file://{pattern} (segments of {segment_s:g} s)"
        self.frames_written = 0
        self._current: VideoFileSink | None = None

    @property
    def files(self) -> list[Path]:
        """The segments written, oldest first."""
        return self.segments.files

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        at = present_ts if present_ts is not None else capture_ts if capture_ts is not None else time.monotonic()
        written = self._current.frames_written if self._current is not None else 0
        # a video file stops at 1 MB free, two frames and its index left: twice that kept free
        room = (2 << 20) + 4 * image.nbytes + 128 * written
        if (name := self.segments.next_file(at, capture_ts, room=room)) is not None or self._current is None:
            self._finish()
            self._current = VideoFileSink(name or self.files[-1], self.fps)
            self._current.live, self._current.sample_aspect, self._current.color = self.live, self.sample_aspect, \
                self.color
        self._current.write(image, capture_ts, present_ts)
        self.frames_written += 1

    def _finish(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.close()

    def close(self) -> None:
        self._finish()
