"""The service's start-up heap and Python's cyclic garbage collector.

Most of what a running service holds is loaded at start-up and lives as long as the process:
modules, the SDKs' models, aiogram's types, SQLAlchemy's mappers, price tables. Python's
collector does not know that: each full collection walks all of it, and a full collection
comes every few thousand surviving objects. Measured under load (50 chats on SQLite,
``bench/e2e_bench.py``) each took 0.10–0.18 s with the event loop stopped, a few times in a
run, straight into the answers' latency.

:class:`StartUpHeap` holds collection off while the service starts (its objects are kept
anyway), then, once the warm-up has loaded the rest, moves everything there is to the
permanent generation (:func:`gc.freeze`) and lets the collector run again: later collections
walk only what turns create (a full one then takes under 10 ms). The cost is that cyclic
garbage left by start-up is never freed; start-up is once per process, so that is bounded.
"""

from __future__ import annotations

import gc


class StartUpHeap:
    """:meth:`hold` when start-up begins, :meth:`settle` once its objects are all loaded."""

    def __init__(self) -> None:
        self._was_enabled = gc.isenabled()
        self._held = False

    def hold(self) -> None:
        """No collections while start-up allocates what it keeps."""
        self._was_enabled = gc.isenabled()
        self._held = True
        gc.disable()

    def settle(self) -> None:
        """Freeze what is loaded now and restore the collector (idempotent)."""
        if not self._held:
            return
        self._held = False
        gc.freeze()
        if self._was_enabled:
            gc.enable()
