"""Worker processes that never outlive the command that started them (no TensorFlow).

Call :func:`init_worker_process` first thing in a process pool's ``initializer``, passing the
parent's pid (``os.getpid()`` in the parent). The worker then

* ignores SIGINT: Ctrl-C reaches the whole process group, and the parent alone decides how to
  stop (it cleans up and ends its pool), so workers print no tracebacks of their own;
* dies with its parent: on Linux the kernel sends it SIGKILL when the parent dies
  (``prctl(PR_SET_PDEATHSIG)``), and everywhere a daemon thread checks ``os.getppid()`` every
  second, so even ``kill -9`` of the parent leaves no worker running.

:func:`sigint_held` closes the gap before that: wrap the pool's creation and ``submit`` calls
(where workers are started) in it, so a worker starts with SIGINT blocked, and a Ctrl-C that
arrives while it is still starting cannot make it print a traceback.

:func:`kill_pool_workers` ends the workers of a ``ProcessPoolExecutor`` at once (on an error
or an interrupt, where waiting for running tasks would only delay the exit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

__all__ = ["init_worker_process", "sigint_held", "kill_pool_workers"]

_PR_SET_PDEATHSIG = 1


def init_worker_process(parent_pid: int) -> None:
    """Make this worker ignore SIGINT and die with ``parent_pid`` (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watcher thread still works
            pass
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="watch-parent", daemon=True).start()


@contextlib.contextmanager
def sigint_held():
    """Block SIGINT in the calling thread meanwhile (processes started then inherit the mask);
    the parent still gets its KeyboardInterrupt, delivered to another thread or afterwards."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def kill_pool_workers(pool) -> None:
    """SIGKILL the worker processes of a ``concurrent.futures.ProcessPoolExecutor``."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError, AttributeError):
            pass
