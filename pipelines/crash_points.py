"""Named points where a test may kill the process (``SCORELOOP_CRASH_AT=<point>``).

The reliability suite runs real ingests in subprocesses and kills them with SIGKILL at these
points to prove that a rerun heals; unset (always, outside that suite) a point does nothing.
The variable is read when a point is reached, never at import.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "SCORELOOP_CRASH_AT"


def crash_point(name: str) -> None:
    """Die at once (SIGKILL, as the kernel's OOM killer or ``kill -9`` would) if asked to here."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
