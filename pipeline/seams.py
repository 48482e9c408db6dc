"""Named places where the crash tests kill the job, for the windows a timer cannot hit.

`IMGSHARD_CRASH_AT=shard_renamed:2` SIGKILLs the process the second time it passes
`crash_point("shard_renamed")`. Unset (always, outside tests/test_crash.py), a crash point
costs one dictionary lookup. SIGKILL, not an exception: nothing gets to clean up, as in a
power cut or an OOM kill.
"""

from __future__ import annotations

import collections
import os
import signal
import threading

__all__ = ["ENV", "crash_point"]

ENV = "IMGSHARD_CRASH_AT"
_passes: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    with _lock:
        _passes[name] += 1
        reached = _passes[name] >= int(nth or 1)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)
