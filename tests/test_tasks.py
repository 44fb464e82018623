"""``python3 tasks.py run`` under Ctrl-C: the service shuts down gracefully, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A stand-in for ``switchboard run``: says when it is up, shuts down cleanly on SIGINT.
SERVICE = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *_: (print('shutting down', flush=True), sys.exit(0)))\n"
    "print('up', flush=True)\n"
    "time.sleep(30)\n"
)


def test_ctrl_c_waits_for_the_service_without_a_traceback() -> None:
    runner = f"import sys, tasks\nsys.exit(tasks._serve([sys.executable, '-c', {SERVICE!r}]))\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", runner],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "up"
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    out, err = proc.communicate(timeout=20)
    assert "shutting down" in out
    assert "Traceback" not in err and proc.returncode == 0
