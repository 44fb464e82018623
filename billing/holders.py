"""Who holds a reservation: ``host/pid-namespace:pid:nonce`` of the process that made it.

A reservation whose holder ran in this host's pid namespace under a pid that no longer exists
was orphaned by a crash and can be released at once. Holders anywhere else (another machine, or
a container sharing the host name but not the pid namespace) are judged by their lease alone.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path


def _pid_space() -> str:
    """This process's pid namespace: the hostname, plus the namespace inode where Linux has one."""
    try:
        namespace = str(Path("/proc/self/ns/pid").stat().st_ino)
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}/{namespace}"


def this_process() -> str:
    return f"{_pid_space()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def local_holder(pid: int, nonce: str = "x") -> str:
    """The holder string of ``pid`` in this pid namespace."""
    return f"{_pid_space()}:{pid}:{nonce}"


def is_dead_local_holder(holder: str | None) -> bool:
    """True only when ``holder`` certainly names a process of this pid namespace that exited."""
    if not holder:
        return False
    space, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if space != _pid_space() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False
