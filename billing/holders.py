"""Who holds a reservation: ``host:pid:nonce`` of the process that made it.

A reservation whose holder ran on this host under a pid that no longer exists was orphaned by a
crash and can be released at once; holders on other hosts are judged by their lease alone.
"""

from __future__ import annotations

import os
import socket
import uuid


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_dead_local_holder(holder: str | None, host: str | None = None) -> bool:
    """True only when ``holder`` certainly names a process of this host that has exited."""
    if not holder:
        return False
    holder_host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if holder_host != (host or socket.gethostname()) or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False
