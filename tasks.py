#!/usr/bin/env python3
"""Fresh-machine entry points that need nothing but Python 3.11+ and pip.

    python3 tasks.py install    set up .venv (the project, its dependencies and dev tools)
    python3 tasks.py run        set up .venv, then migrate, seed and serve (`switchboard run`)
    python3 tasks.py test       set up .venv, then run the test suite (pytest)
    python3 tasks.py test-pg    the suite on a throw-away PostgreSQL cluster (Debian pg_virtualenv)
    python3 tasks.py lint       ruff and mypy
    python3 tasks.py bench      the pipeline benchmark
    python3 tasks.py docs       regenerate docs/commands.md and docs/configuration.md
    python3 tasks.py i18n       extract messages, update locale/*/switchboard.po, compile .mo

Extra arguments after `test` go to pytest. Standard library only: this runs before anything is
installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"
PG_URL = "postgresql+asyncpg://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$PGDATABASE"


def _call(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def _create_venv() -> None:
    try:
        venv.create(VENV, with_pip=True)
    except (OSError, subprocess.CalledProcessError):
        # Some distributions ship Python without ensurepip; pip alone can still build a venv.
        shutil.rmtree(VENV, ignore_errors=True)
        _call(sys.executable, "-m", "pip", "install", "--quiet", "--user", "virtualenv")
        _call(sys.executable, "-m", "virtualenv", "--quiet", VENV)


def _serve(args: list[str]) -> int:
    """Run ``args`` until it exits. Ctrl-C reaches it too (same terminal): wait for its graceful
    shutdown instead of leaving a traceback, and pass the interrupt on if it did not get it."""
    child = subprocess.Popen(args, cwd=ROOT)
    try:
        return child.wait()
    except KeyboardInterrupt:
        try:
            return child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGINT)
            return child.wait()
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            child.kill()
            return 130


def install() -> None:
    """Create .venv and install the project with its dev tools, once per pyproject change."""
    # Checked at run time on purpose: this file may be started by an older interpreter.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]}).")
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    if not PYTHON.exists():
        _create_venv()
    _call(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _call(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.touch()


def main(argv: list[str]) -> int:
    task, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if task not in {"install", "run", "test", "test-pg", "lint", "bench", "docs", "i18n"}:
        print(__doc__)
        return 0 if task in {"help", "-h", "--help"} else 2
    install()
    if task == "install":
        return 0
    if task == "run":
        return _serve([str(BIN / "switchboard"), "run", *rest])
    if task == "test":
        return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
    if task == "docs":
        return subprocess.call([str(PYTHON), "-m", "bot.docs", *rest], cwd=ROOT)
    if task == "test-pg":
        pytest = " ".join([f'"{PYTHON}"', "-m", "pytest", *rest])
        script = f'TEST_DATABASE_URL="{PG_URL}" {pytest}'
        return subprocess.call(
            ["pg_virtualenv", "-o", "max_connections=200", "sh", "-c", script], cwd=ROOT
        )
    if task == "lint":
        return subprocess.call([str(BIN / "ruff"), "check", "."], cwd=ROOT) or subprocess.call(
            [str(BIN / "mypy")], cwd=ROOT
        )
    if task == "i18n":
        return subprocess.call([str(PYTHON), "-m", "core.i18n_catalogs"], cwd=ROOT)
    return subprocess.call([str(PYTHON), "bench/pipeline_bench.py", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
