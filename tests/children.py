"""Processes a test starts die with it.

A test run cut short (a timeout, Ctrl-C, kill) runs no finalizers, and a server left behind keeps
ticking and skews every later run on the machine. On Linux the kernel can send the child SIGKILL
when the thread that started it ends; elsewhere this does nothing and the finalizers remain the
only cleanup.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``preexec_fn`` for ``subprocess.Popen``: SIGKILL this child when its parent ends."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
