"""A stop request by signal (SIGTERM, SIGINT, SIGHUP) that any number of signals, arriving at
any moment, can make but never hang.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread is inside ``threading.Event.wait`` holding the Event's internal lock. A handler that
sets the same Event then waits for that lock for ever: the supervisor hangs. It happens when a
SIGTERM lands at the wrong moment, more often when two arrive together (a signal to ``make
run``'s process group reaches it twice: directly, and forwarded by make). So the handler here
takes no lock and does no work (it stores the signal number), and the waiting is a ``select``
on a pipe that the interpreter's C-level handler writes to (``signal.set_wakeup_fd``): a signal
wakes the waiter at once, whether or not the Python handler has run yet.

Plain Python, no Django: ``make run`` (``apiops_site/run.py``) and the worker's supervisor
(:mod:`jobs.worker`) both use it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopSignal:
    """Set by a stop signal (once :meth:`install` ran) or by :meth:`set` from any thread."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._set = False
        #: The first stop signal received (None: none, or only :meth:`set` calls).
        self.signum: int | None = None

    def install(self, signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        """Handle ``signals`` with this object (call from the main thread)."""
        for signum in signals:
            signal.signal(signum, self._handle)
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def _handle(self, signum: int, frame: object) -> None:
        # No lock, no I/O, no call that could block: see the module docstring.
        if self.signum is None:
            self.signum = signum
        self._set = True

    def set(self) -> None:
        """Ask for a stop without a signal (a test, another thread)."""
        self._set = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"\0")

    def is_set(self) -> bool:
        """True once a stop was asked for."""
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a stop; True once one was asked for."""
        if self._set:
            return True
        ready, _, _ = select.select([self._read], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                # Bytes on the pipe are stop signals (the wakeup fd writes only for signals
                # with a Python handler, which are ours) or set(): a stop either way, even if
                # the Python handler has not run yet.
                if os.read(self._read, 512):
                    self._set = True
        return self._set
