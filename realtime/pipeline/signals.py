"""Hold a stop signal that lands while one frame's outputs are written, and deliver it after.

Python runs a signal handler between any two bytecodes, so Ctrl-C (or the SIGTERM of ``docker stop``,
turned into an exception by the CLI) could otherwise land after a frame went into the video and before
its ``--metadata`` line: a recording with a frame its metadata lacks, or an archive one mask short.
While a :class:`SignalHold` is entered, SIGINT, SIGTERM and SIGHUP are noted, not acted on; on a clean
exit the first one noted goes to the handler that was there before, as if it had just arrived.

Only handlers written in Python are wrapped (``default_int_handler``, the CLI's); a signal that is
ignored or kills the process by default is left as it is, and nothing happens off the main thread,
where Python cannot set handlers.

Example:
    >>> hold = SignalHold()
    >>> hold.install()
    >>> with hold:
    ...     pass  # write the frame, its mask and its metadata line: a Ctrl-C here is raised after them
    >>> hold.uninstall()
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# Set when a stop signal lands while one is held: code that waits inside the hold (an output whose reader stopped
# reading) gives up on seeing it, so that a stop is never held by something outside the run
STOP_NOTED = threading.Event()


class SignalHold:
    """A re-entrant ``with`` block during which stop signals wait (see the module's docstring)."""

    def __init__(self) -> None:
        self._depth = 0
        self._held: tuple[int, FrameType | None] | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Wrap the Python-level handlers of SIGINT, SIGTERM and SIGHUP (main thread only; else a no-op)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        STOP_NOTED.clear()
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if callable(previous):
                self._previous[signum] = previous
                signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        """Put the wrapped handlers back (those still ours: a handler set since is left in place)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._depth:
            self._held = self._held or (signum, frame)
            STOP_NOTED.set()
        else:
            self._previous[signum](signum, frame)

    def __enter__(self) -> SignalHold:
        if threading.current_thread() is threading.main_thread():  # where handlers run
            self._depth += 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._depth -= 1
        if self._depth or self._held is None:
            return
        signum, frame = self._held
        self._held = None
        # an exception already on its way stops the run by itself, and says more than the signal would
        if exc_type is None and signum in self._previous:
            self._previous[signum](signum, frame)
