"""Start-up of the real ``switchboard run`` process: time to the first poll, memory, imports.

The service starts against the fake Telegram Bot API and model (polling mode, a migrated SQLite
database), as after a deploy. Per run it reports:

- start-up: process spawn to the first ``getUpdates`` long poll (``deleteWebhook`` is the call
  right before it);
- first turn: one private message sent right after start-up until the final answer arrived;
- RSS at the first poll and peak RSS after the first turn (``VmRSS``/``VmHWM``).

Then one more run with ``-X importtime`` (which slows imports, so it is not timed) lists what the
process had imported by its first poll, then what the warm-up and the first turn imported after
it: the top-level packages by self time (each package's modules summed) and the slowest single
modules.

``--tree DIR`` (repeatable) runs the service from another checkout too, e.g. a revision made with
``git worktree add /tmp/before <rev>``; runs of the trees alternate so machine noise hits all
alike, and the median run is reported.

    .venv/bin/python bench/startup_bench.py [--runs 5] [--top 25] [--tree DIR ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e_bench import FIRST_CHAT, provision  # noqa: E402  (bench/ is this script's directory)

from tests.fakes.llm_server import FakeLLMServer  # noqa: E402
from tests.fakes.telegram_server import FakeTelegramServer  # noqa: E402

CHAT = FIRST_CHAT  # the chat provision() links to the tenant


@dataclass
class Run:
    startup: float
    first_turn: float
    rss_at_poll_mb: float
    peak_rss_mb: float


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_service(
    tree: Path, url: str, media: Path, importtime: bool
) -> tuple[Run, list[str], list[str]]:
    """Start the service of ``tree``, wait for its first poll, send one message; its figures and
    (with ``importtime``) the import log lines written before the first poll and after it."""
    llm = FakeLLMServer()
    await llm.start()
    telegram = FakeTelegramServer(first_update_id=time.time_ns() // 1000)
    await telegram.start()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(tree),
        "DATABASE_URL": url,
        "MEDIA_DIR": str(media),
        "OPENAI_BASE_URL": llm.base_url,
        "DEFAULT_PROVIDER": "openai",
        "DEFAULT_MODEL": "gpt-4o-mini",
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_API_BASE": telegram.base_url,
        "TELEGRAM_MODE": "polling",
        "HTTP_PORT": "0",
    }
    options = ["-X", "importtime"] if importtime else []
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *options,
        "-m",
        "bot",
        "--log-level",
        "WARNING",
        "run",
        env=env,
        cwd=media.parent,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE if importtime else asyncio.subprocess.DEVNULL,
    )
    # The import log is read while the process runs: a full pipe would block it.
    lines: list[str] = []
    reading = asyncio.create_task(_collect(proc.stderr, lines))
    try:
        await telegram.wait_for(lambda: bool(telegram.calls_to("deleteWebhook")), within=60)
        startup = telegram.calls_to("deleteWebhook")[0].at - started
        rss_at_poll = _status_mb(proc.pid, "VmRSS")
        await asyncio.sleep(0.1)  # the import log written before the poll reaches us
        at_poll = len(lines)
        sent = time.monotonic()
        await telegram.send_update(telegram.private_message(CHAT, "hello"))
        await telegram.wait_for(lambda: bool(telegram.bot_texts(CHAT)), within=60)
        first_turn = time.monotonic() - sent
        peak = _status_mb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        await proc.wait()
        await reading
        await telegram.stop()
        await llm.stop()
    return Run(startup, first_turn, rss_at_poll, peak), lines[:at_poll], lines[at_poll:]


async def _collect(stream: asyncio.StreamReader | None, lines: list[str]) -> None:
    while stream is not None and (line := await stream.readline()):
        lines.append(line.decode("utf-8", "replace"))


def import_breakdown(log: list[str], top: int) -> list[str]:
    """Lines of a report on a ``-X importtime`` log: packages by self time, slowest modules."""
    selves: dict[str, int] = defaultdict(int)
    modules: list[tuple[int, int, str]] = []
    for line in log:
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        if not fields[0].strip().isdigit():
            continue  # the header line
        self_us, cumulative_us, name = int(fields[0]), int(fields[1]), fields[2].strip()
        selves[name.split(".")[0]] += self_us
        modules.append((cumulative_us, self_us, name))
    total = sum(selves.values())
    lines = [f"  {len(modules)} modules, {total / 1000:.0f} ms of import time (self, summed)"]
    lines.append("  top packages by self time (ms, share):")
    for name, us in sorted(selves.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"    {name:32} {us / 1000:7.1f}  {100 * us / max(total, 1):4.1f}%")
    lines.append("  slowest modules by cumulative time (ms cumulative / self):")
    for cumulative_us, self_us, name in sorted(modules, reverse=True)[:top]:
        lines.append(f"    {name:56} {cumulative_us / 1000:7.1f} / {self_us / 1000:6.1f}")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tree")
    parser.add_argument("--top", type=int, default=25, help="rows of the import breakdown")
    parser.add_argument(
        "--tree", action="append", type=Path, default=[], help="another checkout to compare"
    )
    args = parser.parse_args()
    trees: list[Path] = [ROOT, *(tree.resolve() for tree in args.tree)]

    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        media = Path(tmp) / "media"
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await provision(url, 1, media)  # migrated, one tenant with the chat linked
        runs: dict[Path, list[Run]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for tree in trees:
                run, _, _ = await run_service(tree, url, media, importtime=False)
                runs[tree].append(run)
        logs = {tree: (await run_service(tree, url, media, importtime=True))[1:] for tree in trees}

    print(f"switchboard run, polling, SQLite; median of {args.runs} runs [min-max]")
    for tree in trees:
        print(f"{tree}:")
        for label, values, unit in (
            ("start-up to first poll", [r.startup for r in runs[tree]], "s"),
            ("first turn (after start)", [r.first_turn for r in runs[tree]], "s"),
            ("RSS at first poll", [r.rss_at_poll_mb for r in runs[tree]], "MB"),
            ("peak RSS after one turn", [r.peak_rss_mb for r in runs[tree]], "MB"),
        ):
            print(
                f"  {label:26} {statistics.median(values):8.2f} {unit:2}"
                f"  [{min(values):.2f}-{max(values):.2f}]"
            )
        before_poll, first_turn = logs[tree]
        print("  imported before the first poll (-X importtime):")
        print("\n".join(import_breakdown(before_poll, args.top)))
        print("  imported after it, by the warm-up and the first turn:")
        print("\n".join(import_breakdown(first_turn, args.top)))


if __name__ == "__main__":
    asyncio.run(main())
