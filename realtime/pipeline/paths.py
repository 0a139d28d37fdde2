"""What a run reads and writes on disk, checked before anything opens: no output may overwrite an input or another
output (a clip given as both ``--source`` and ``--output`` would be truncated before its first frame is read).

Example:
    >>> check_run_paths(["synthetic:64x48@10"], ["out.mp4"], metadata="out.jsonl", stats="stats.json")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engines.errors import OutputError
from realtime.capture import source_files
from realtime.capture.files import IMAGE_SUFFIXES
from realtime.outputs import sink_path
from realtime.outputs.paths import check_no_overwrites
from realtime.outputs.pipe import STDOUT


def check_run_paths(sources: Sequence[Any], outputs: Sequence[Any], *, save_masks: Sequence[Any] = (),
                    metadata: str | Path | None = None, stats: str | Path | None = None,
                    background: Any = None) -> None:
    """Raise :class:`~engines.errors.OutputError` if an output of the run would write over one of its inputs (source
    files, a ``replace`` background) or over another output. Sources and outputs given as open objects are skipped
    (only what the run would create from strings can still be refused)."""
    files = [path for source in sources for path in source_files(source)]
    reads = [("source", path) for path in files]
    # PNGs written where source images lie would replace them (000000.png, ...) or mix with them; a video may stay
    reads += [("folder of the source images", folder)
              for folder in dict.fromkeys(p.parent for p in files if p.suffix.lower() in IMAGE_SUFFIXES)]
    if isinstance(background, str | Path):
        reads.append(("--background", Path(background)))
    to_stdout = [f"{flag} -" for flag, value in [*(("--output", out) for out in outputs), ("--metadata", metadata),
                                                    ("--stats", stats)] if isinstance(value, str) and value.strip() == STDOUT]
    if len(to_stdout) > 1:
        raise OutputError(f"{' and '.join(to_stdout)} would {'both' if len(to_stdout) == 2 else 'all'} write to standard "
                          "output; give all but one a file")
    writes = [("--output", path) for output in outputs if (path := sink_path(output)) is not None]
    writes += [("--save-masks", Path(path)) for path in save_masks if isinstance(path, str | Path)]
    writes += [(flag, Path(path)) for flag, path in (("--metadata", metadata), ("--stats", stats))
               if path and str(path) != STDOUT]
    check_no_overwrites(reads, writes)
