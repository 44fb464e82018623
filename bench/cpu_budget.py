"""A CPU budget of its own for each service process the e2e bench starts (Linux cgroups).

Comparing one service process with two is fair only if each has CPU of its own that PostgreSQL
and the load generator do not take: on a machine with cores to spare, pinning with
``taskset``. Where there are too few cores to pin (two), each process gets a CPU bandwidth
quota instead, ``cores`` of CPU time per wall second, in a control group of its own: one
process with budget B against two with budget B each is then the comparison pinning gives, as
long as B times the processes leaves room for the others (the bench prints how busy the machine
was). Needs write access to the cgroup file system (cgroup v1's ``cpu`` controller, or v2 with
``cpu`` delegated), as root in a container.
"""

from __future__ import annotations

import os
from pathlib import Path

_PERIOD_US = 100_000
_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")


class CpuBudget:
    """Control groups named after this bench process, one per service process, each limited to
    ``cores`` of CPU; :meth:`close` removes them once their processes have exited."""

    def __init__(self, cores: float) -> None:
        if cores <= 0:
            raise ValueError("a CPU budget is a positive number of cores")
        self._quota_us = int(cores * _PERIOD_US)
        self._groups: list[Path] = []
        if (_V1 / "cpu.cfs_quota_us").exists():
            self._root, self._v2 = _V1, False
        elif "cpu" in (_V2 / "cgroup.controllers").read_text(encoding="ascii").split():
            self._root, self._v2 = _V2, True
        else:
            raise RuntimeError("no cgroup cpu controller to give each process a CPU budget")

    def add(self, pid: int) -> None:
        """Move process ``pid`` into a new group of its own with the budget."""
        group = self._root / f"switchboard-bench-{os.getpid()}-{len(self._groups)}"
        group.mkdir()
        self._groups.append(group)
        if self._v2:
            (group / "cpu.max").write_text(f"{self._quota_us} {_PERIOD_US}\n", encoding="ascii")
        else:
            (group / "cpu.cfs_period_us").write_text(f"{_PERIOD_US}\n", encoding="ascii")
            (group / "cpu.cfs_quota_us").write_text(f"{self._quota_us}\n", encoding="ascii")
        (group / "cgroup.procs").write_text(f"{pid}\n", encoding="ascii")

    def throttled_seconds(self) -> float:
        """How long the groups' processes were held back by the quota, in all."""
        total = 0.0
        for group in self._groups:
            for line in (group / "cpu.stat").read_text(encoding="ascii").splitlines():
                name, _, value = line.partition(" ")
                if name == "throttled_usec":  # v2
                    total += int(value) / 1e6
                elif name == "throttled_time":  # v1, nanoseconds
                    total += int(value) / 1e9
        return total

    def close(self) -> None:
        """Remove the groups (their processes must have exited)."""
        for group in self._groups:
            group.rmdir()
        self._groups.clear()
