"""End to end: the real ``switchboard run`` process against the test fakes of the Telegram Bot
API and of OpenAI, as a user sees it.

Each chat sends its messages one after another (the next when the answer arrived); chats run
concurrently. The fake model streams a 312-character answer in 20 chunks with no delay, so what
is measured is Switchboard: pipeline, persistence, metering and Telegram delivery.

    .venv/bin/python bench/e2e_bench.py [--chats 1 50] [--messages 10] [--mode polling|webhook]
                                        [--processes 1 [2]] [--cpu-budget CORES]
                                        [--tenants N] [--database-url URL]
                                        [--profile DIR] [--tree DIR --tree DIR2 [--runs 3]]

Prints, per run: turns/s, latency p50/p95/p99/max (and p50/p99 of the messages after each
chat's first: the first ones come in one burst to a service just started), first visible text
p50, the slowest chat's
time over the fastest's, CPU ms per turn and peak RSS of the service process(es), Bot API calls
per turn, the start-up time to the first poll (polling mode), and the database work per turn
read from the service's ``/metrics`` (transactions, statements, write transactions, time the
writer was held and waited for, group-commit batch sizes) where the service reports it.
``--tree DIR`` (given twice or more) runs the service of each source tree in turn, ``--runs``
times alternately, and prints the medians side by side with their ratios to the first tree
(``git archive COMMIT | tar -x -C DIR`` makes a tree of a commit). ``--processes 2`` (webhook
mode, PostgreSQL) spreads the updates over two processes; ``--processes 1 2`` runs both in
turn and compares them side by side. ``--cpu-budget CORES`` gives each service process that
much CPU of its own (a cgroup quota, ``bench/cpu_budget.py``): where there are too few cores to
pin them away from PostgreSQL and the load with ``taskset``. ``--tenants N`` spreads the chats
over N tenants. ``--profile DIR`` samples each
service process with py-spy (``pip install py-spy``) while the chats run and writes its folded
stacks to DIR, one file per run and process (``bench/profile_summary.py`` reads them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The source tree under test (``--tree``); this checkout by default.
sys.path.insert(0, os.environ.get("E2E_TREE") or str(Path(__file__).resolve().parents[1]))

import asyncpg
from cpu_budget import CpuBudget  # beside this script, whichever tree is under test
from sqlalchemy.engine import make_url

from bot.app import build_app, prepare_database
from bot.settings import load_settings
from handlers.telegram.adapter import private_scope
from storage.repositories.ledger import LedgerRepository
from storage.repositories.tenants import BindingRepository, TenantRepository
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.telegram_server import FakeTelegramServer

ROOT = Path(__file__).resolve().parents[1]
REPLY = ("Switchboard streams this answer in twenty small chunks. " * 6)[:312]
FIRST_CHAT = 700_000
SECRET = "bench-secret"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Turn:
    chat: int
    latency: float
    first_text: float
    #: The message's place in its chat: 0 is the chat's first, which meets a cold service
    #: (a member to create, SDKs still loading) in a burst of every chat's first message.
    index: int = 0


@dataclass
class Result:
    chats: int
    turns: list[Turn]
    wall: float
    cpu_seconds: float
    peak_rss_mb: float
    api_calls: int
    startup: float | None
    chat_spans: list[float]
    #: The bench process itself (fake Bot API, fake model, the chats): on a small machine it
    #: competes with the service for the same cores.
    driver_cpu_seconds: float = 0.0
    #: Share of the machine's CPU (all cores) busy while the chats ran, whoever used it.
    machine_busy: float = 0.0
    #: The services' database counters over the chats (``switchboard_db_*`` on ``/metrics``);
    #: empty when the service does not report them.
    db: dict[str, float] | None = None
    #: Of ``cpu_seconds``, what the services' main threads (the event loops) used; the rest is
    #: their other threads (aiosqlite's one per connection, the resolver's, ...).
    loop_cpu_seconds: float = 0.0
    #: PostgreSQL only: backends of the database waiting on a lock, on average over samples
    #: taken every 50 ms while the chats ran (None on SQLite).
    lock_waiting: float | None = None
    #: PostgreSQL only: deadlocks it detected (and broke by rolling a transaction back).
    deadlocks: int | None = None
    #: With ``--cpu-budget``: how long the quota held a service process back, on average.
    throttled_seconds: float | None = None


def _cpu_seconds(pid: int) -> float:
    return _cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def _main_thread_cpu_seconds(pid: int) -> float:
    """The main thread's own CPU (``/proc/PID/stat`` counts every thread of the process)."""
    return _cpu_seconds_of(Path(f"/proc/{pid}/task/{pid}/stat"))


def _cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime + stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def provision(url: str, chats: int, media: Path, tenants: int = 1) -> None:
    """Tenants with plenty of tokens, and the chats already linked to them (chat n to tenant
    n mod ``tenants``)."""
    app = build_app(
        load_settings(
            {
                "DATABASE_URL": url,
                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                "DEFAULT_PROVIDER": "openai",
                "DEFAULT_MODEL": "gpt-4o-mini",
                "MEDIA_DIR": str(media),
            }
        )
    )
    try:
        await prepare_database(app)
        now = app.deps.clock()
        async with app.deps.sessions.begin() as session:
            repository = TenantRepository(session)
            made = []
            for t in range(tenants):
                slug = "bench" if t == 0 else f"bench{t}"
                tenant = await repository.find(slug) or await repository.create(
                    slug=slug,
                    name=f"Bench {t}",
                    email=None,
                    currency="EUR",
                    vat_rate_ppm=200_000,
                    trial_ends_at=None,
                )
                tenant.status = "active"
                await LedgerRepository(session).post(tenant.id, "grant", 10**11, now=now)
                made.append(tenant)
            for n in range(chats):
                await BindingRepository(session).bind(
                    made[n % tenants], "telegram", private_scope(FIRST_CHAT + n)
                )
    finally:
        await app.aclose()


async def run_once(
    *,
    url: str,
    chats: int,
    messages: int,
    mode: str,
    processes: int,
    tmp: Path,
    tenants: int = 1,
    profile: Path | None = None,
    profile_gil: bool = False,
    tree: Path = ROOT,
    cpu_budget: float | None = None,
) -> Result:
    llm = FakeLLMServer()
    llm.reply_text = REPLY
    llm.chunk_size = 16  # 312 characters in 20 chunks
    await llm.start()
    # Update ids unique across runs: a database given with --database-url keeps the claims of
    # earlier runs, which would turn the same ids away as duplicates.
    telegram = FakeTelegramServer(first_update_id=time.time_ns() // 1000)
    await telegram.start()
    procs: list[asyncio.subprocess.Process] = []
    ports: list[int] = []
    budget = CpuBudget(cpu_budget) if cpu_budget else None
    try:
        await _provision_with(tree, url, chats, tmp / "media", tenants)
        started = time.monotonic()
        for _ in range(processes):
            port = _free_port()
            ports.append(port)
            env = {
                **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
                "PYTHONPATH": str(tree),
                "DATABASE_URL": url,
                "MEDIA_DIR": str(tmp / "media"),
                "OPENAI_BASE_URL": llm.base_url,
                "DEFAULT_PROVIDER": "openai",
                "DEFAULT_MODEL": "gpt-4o-mini",
                "TELEGRAM_BOT_TOKEN": telegram.token,
                "TELEGRAM_API_BASE": telegram.base_url,
                "TELEGRAM_MODE": mode,
                "TELEGRAM_WEBHOOK_SECRET": SECRET,
                "HTTP_PORT": str(port),
                "RATE_LIMIT_PER_MINUTE": "0",
            }
            if mode == "webhook":
                env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot",
                    "--log-level",
                    "WARNING",
                    "run",
                    env=env,
                    cwd=tmp,
                    stdout=asyncio.subprocess.DEVNULL,
                )
            )
            if budget is not None:
                budget.add(procs[-1].pid)
        startup: float | None = None
        if mode == "polling":
            # A long poll is recorded when it returns; deleteWebhook is the call right before it.
            await telegram.wait_for(lambda: bool(telegram.calls_to("deleteWebhook")), within=60)
            startup = telegram.calls_to("deleteWebhook")[0].at - started
            await asyncio.sleep(0.2)
        else:
            await telegram.wait_for(
                lambda: len(telegram.calls_to("setWebhook")) >= processes, within=60
            )
            await asyncio.sleep(0.2)
        spies = (
            [await _spy(p.pid, profile, chats, i, profile_gil) for i, p in enumerate(procs)]
            if profile
            else []
        )
        cpu_before = sum(_cpu_seconds(p.pid) for p in procs)
        throttled_before = budget.throttled_seconds() if budget else 0.0
        loop_before = sum(_main_thread_cpu_seconds(p.pid) for p in procs)
        driver_before = time.process_time()
        machine_before = _machine_ticks()
        calls_before = len(telegram.calls)
        db_before = [await _db_counters(port) for port in ports]
        turns: list[Turn] = []
        spans: list[float] = []
        wall_started = time.monotonic()
        locks = _LockSampler(url)
        sampling = asyncio.create_task(locks.run())
        await asyncio.gather(
            *(
                _chat(telegram, FIRST_CHAT + n, messages, mode, ports, n, turns, spans)
                for n in range(chats)
            )
        )
        wall = time.monotonic() - wall_started
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu_before
        throttled = (budget.throttled_seconds() - throttled_before) / processes if budget else None
        loop_cpu = sum(_main_thread_cpu_seconds(p.pid) for p in procs) - loop_before
        driver_cpu = time.process_time() - driver_before
        machine_after = _machine_ticks()
        busy = (machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1])
        rss = sum(_peak_rss_mb(p.pid) for p in procs)
        calls = len(telegram.calls) - calls_before
        db_after = [await _db_counters(port) for port in ports]
        db = _sum_differences(db_before, db_after)
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
        return Result(
            chats,
            turns,
            wall,
            cpu,
            rss,
            calls,
            startup,
            spans,
            driver_cpu,
            busy,
            db,
            loop_cpu,
            locks.mean(),
            locks.deadlocks,
            throttled,
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            await proc.wait()
        if budget is not None:
            budget.close()
        await telegram.stop()
        await llm.stop()


class _LockSampler:
    """Counts, every 50 ms, the backends of a PostgreSQL database waiting on a lock (another
    transaction holds a row they update, say), and the deadlocks PostgreSQL broke meanwhile
    (its own count, which backends report within a second or so); nothing on SQLite."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._dsn = (
            parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            if parsed.get_backend_name() == "postgresql"
            else None
        )
        self._samples: list[int] = []
        self.deadlocks: int | None = None

    async def run(self) -> None:
        if self._dsn is None:
            return
        connection = await asyncpg.connect(self._dsn)
        count = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        before = int(await connection.fetchval(count))
        try:
            while True:
                waiting = await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
                self._samples.append(int(waiting))
                await asyncio.sleep(0.05)
        finally:
            try:
                self.deadlocks = int(await connection.fetchval(count)) - before
            finally:
                await connection.close()

    def mean(self) -> float | None:
        return statistics.mean(self._samples) if self._samples else None


async def _provision_with(tree: Path, url: str, chats: int, media: Path, tenants: int) -> None:
    """Provision with the tree under test's own code (its migrations)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--provision",
        json.dumps([url, chats, str(media), tenants]),
        env={**os.environ, "E2E_TREE": str(tree), "PYTHONPATH": str(tree)},
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"provisioning with {tree} failed")


_METRIC_LINE = re.compile(r"^(switchboard_db_\w+?)(?:_total)?(\{size=\"(\d+)\"\})? ([0-9.e+-]+)$")


async def _db_counters(port: int) -> dict[str, float]:
    """The ``switchboard_db_*`` counters of the service on ``port`` (empty if it has none)."""

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return str(response.read().decode())

    counters: dict[str, float] = {}
    for line in (await asyncio.to_thread(fetch)).splitlines():
        match = _METRIC_LINE.match(line)
        if match is None:
            continue
        name, _, size, value = match.groups()
        if size is None:
            counters[name] = float(value)
        else:  # group commits: batches and the turns they held
            counters["switchboard_db_batches"] = counters.get("switchboard_db_batches", 0) + float(
                value
            )
            counters["switchboard_db_batched_turns"] = counters.get(
                "switchboard_db_batched_turns", 0
            ) + int(size) * float(value)
    return counters


def _sum_differences(
    before: list[dict[str, float]], after: list[dict[str, float]]
) -> dict[str, float] | None:
    total: dict[str, float] = {}
    for old, new in zip(before, after, strict=True):
        for name, value in new.items():
            total[name] = total.get(name, 0) + value - old.get(name, 0)
    return total or None


async def _spy(
    pid: int, profile: Path, chats: int, index: int, gil: bool
) -> asyncio.subprocess.Process:
    out = profile / f"chats{chats}-process{index}.txt"
    spy = await asyncio.create_subprocess_exec(
        shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        or "py-spy",
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "250",
        "--nonblocking",
        *(["--gil"] if gil else []),
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1)  # attached before the first message
    return spy


async def _chat(
    telegram: FakeTelegramServer,
    chat: int,
    messages: int,
    mode: str,
    ports: list[int],
    index: int,
    turns: list[Turn],
    spans: list[float],
) -> None:
    begun = time.monotonic()
    for n in range(messages):
        update = telegram.private_message(chat, f"question {n} from {chat}")
        sent = time.monotonic()
        if mode == "webhook":
            port = ports[(index + n) % len(ports)]
            await telegram.post_webhook(
                update, secret=SECRET, url=f"http://127.0.0.1:{port}/telegram/webhook"
            )
        else:
            await telegram.send_update(update)
        await telegram.wait_for(lambda n=n: len(telegram.bot_texts(chat)) > n, within=120)
        mine = [
            c
            for c in telegram.calls
            if c.at >= sent
            and c.method in ("sendMessageDraft", "sendMessage")
            and str(c.params.get("chat_id")) == str(chat)
        ]
        final = [c for c in mine if c.method == "sendMessage"][-1]
        turns.append(Turn(chat, final.at - sent, mine[0].at - sent, n))
    spans.append(time.monotonic() - begun)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def report(result: Result, label: str) -> None:
    latencies = [t.latency for t in result.turns]
    n = len(result.turns)
    print(f"\n{label}: {result.chats} chats x {n // result.chats} messages")
    print(f"  turns/s                 {n / result.wall:8.1f}")
    print(
        "  latency p50/p95/p99/max "
        + " / ".join(f"{_percentile(latencies, q) * 1000:.0f}" for q in (0.5, 0.95, 0.99, 1.0))
        + " ms"
    )
    first_text = statistics.median(t.first_text for t in result.turns)
    print(f"  first text p50          {first_text * 1000:8.0f} ms")
    later = [t.latency for t in result.turns if t.index > 0]
    if later:
        print(
            "  after each chat's first: p50/p99 "
            + " / ".join(f"{_percentile(later, q) * 1000:.0f}" for q in (0.5, 0.99))
            + " ms"
        )
    print(f"  slowest / fastest chat  {max(result.chat_spans) / min(result.chat_spans):8.2f}")
    print(f"  CPU per turn            {result.cpu_seconds / n * 1000:8.1f} ms")
    print(f"    of it, event loop     {result.loop_cpu_seconds / n * 1000:8.1f} ms")
    print(f"  bench's own CPU per turn{result.driver_cpu_seconds / n * 1000:8.1f} ms")
    print(f"  machine CPU busy        {result.machine_busy:8.0%} of {os.cpu_count()} cores")
    print(f"  peak RSS                {result.peak_rss_mb:8.0f} MB")
    print(f"  Bot API calls per turn  {result.api_calls / n:8.1f}")
    if result.startup is not None:
        print(f"  start-up to first poll  {result.startup:8.2f} s")
    for name, value in _db_figures(result).items():
        print(f"  {name:24}{value:8.2f}")
    if result.lock_waiting is not None:
        print(f"  backends waiting on a lock (mean) {result.lock_waiting:5.2f}")
    if result.deadlocks is not None:
        print(f"  deadlocks               {result.deadlocks:8d}")
    if result.throttled_seconds is not None:
        held = result.throttled_seconds / result.wall
        print(f"  held back by CPU budget {held:8.0%} of the run, per process")


def _db_figures(result: Result) -> dict[str, float]:
    """Database work per turn (empty when the service does not report it)."""
    db = result.db
    if not db:
        return {}
    n = len(result.turns)
    writes = db.get("switchboard_db_writes", 0)
    figures = {
        "transactions per turn": db.get("switchboard_db_transactions", 0) / n,
        "statements per turn": db.get("switchboard_db_statements", 0) / n,
        "writes per turn": writes / n,
        "writer held ms/turn": db.get("switchboard_db_writer_hold_seconds", 0) * 1000 / n,
        "writer held ms/write": db.get("switchboard_db_writer_hold_seconds", 0)
        * 1000
        / max(writes, 1),
        "writer wait ms/turn": db.get("switchboard_db_writer_wait_seconds", 0) * 1000 / n,
    }
    if db.get("switchboard_db_batches"):
        figures["turns per group commit"] = (
            db["switchboard_db_batched_turns"] / db["switchboard_db_batches"]
        )
    return figures


def _figures(result: Result) -> dict[str, float]:
    latencies = [t.latency for t in result.turns]
    n = len(result.turns)
    return {
        "turns/s": n / result.wall,
        "latency p50 ms": _percentile(latencies, 0.5) * 1000,
        "latency p99 ms": _percentile(latencies, 0.99) * 1000,
        **_later_figures(result),
        "first text p50 ms": statistics.median(t.first_text for t in result.turns) * 1000,
        "CPU ms per turn": result.cpu_seconds / n * 1000,
        "event loop CPU ms/turn": result.loop_cpu_seconds / n * 1000,
        "peak RSS MB": result.peak_rss_mb,
        "Bot API calls/turn": result.api_calls / n,
        **({"start-up s": result.startup} if result.startup is not None else {}),
        **_db_figures(result),
        **(
            {"lock-waiting backends": result.lock_waiting}
            if result.lock_waiting is not None
            else {}
        ),
        **({"deadlocks": float(result.deadlocks)} if result.deadlocks is not None else {}),
    }


def _later_figures(result: Result) -> dict[str, float]:
    """Latency once every chat has had its first message answered (the steady state)."""
    later = [t.latency for t in result.turns if t.index > 0]
    if not later:
        return {}
    return {
        "later p50 ms": _percentile(later, 0.5) * 1000,
        "later p99 ms": _percentile(later, 0.99) * 1000,
    }


@dataclass(frozen=True, slots=True)
class Variant:
    """What one column of a comparison runs: a source tree, with this many processes."""

    tree: Path
    processes: int
    #: Whether the column's name gives the process count (several counts are compared).
    name_processes: bool = False

    @property
    def name(self) -> str:
        return f"{self.tree.name} x{self.processes}" if self.name_processes else self.tree.name


def compare(variants: list[Variant], results: dict[Variant, list[Result]]) -> None:
    """Medians per variant, side by side, with the ratio of each to the first."""
    medians = {
        v: {
            name: statistics.median(_figures(r).get(name, float("nan")) for r in results[v])
            for name in _figures(results[v][0])
        }
        for v in variants
    }
    names = list(medians[variants[0]])
    for variant in variants[1:]:
        names += [n for n in medians[variant] if n not in names]
    runs = len(results[variants[0]])
    print(f"\nmedians of {runs} alternating run(s); ratio = column / {variants[0].name}")
    header = f"{'':24}" + "".join(f"{v.name[:14]:>14}" for v in variants)
    print(header + "".join(f"{'ratio ' + v.name[:9]:>16}" for v in variants[1:]))
    for name in names:
        values = [medians[v].get(name, float("nan")) for v in variants]
        line = f"{name:24}" + "".join(f"{x:14.1f}" for x in values)
        base = values[0]
        line += "".join(f"{(x / base if base else float('nan')):15.2f}x" for x in values[1:])
        print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--mode", choices=("polling", "webhook"), default="polling")
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1],
        help="service processes (several counts: compared side by side, e.g. 1 2)",
    )
    parser.add_argument(
        "--cpu-budget",
        type=float,
        metavar="CORES",
        help="give each service process this much CPU of its own (bench/cpu_budget.py)",
    )
    parser.add_argument(
        "--tenants", type=int, default=1, help="spread the chats over this many tenants"
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file per run")
    parser.add_argument("--profile", type=Path, help="write py-spy folded stacks here")
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="sample only the thread holding the GIL (where Python code spends CPU)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a source tree to run the service from (twice or more: compare them side by side)",
    )
    parser.add_argument("--runs", type=int, default=1, help="alternating runs per tree")
    parser.add_argument("--provision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.provision:
        url, chats, media, tenants = json.loads(args.provision)
        await provision(url, chats, Path(media), tenants)
        return
    trees = [t.resolve() for t in args.tree or [ROOT]]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    if max(args.processes) > 1 and args.mode != "webhook":
        parser.error("--processes > 1 needs --mode webhook")
    several = len(args.processes) > 1
    variants = [Variant(t, p, several) for t in trees for p in args.processes]
    for chats in args.chats:
        results: dict[Variant, list[Result]] = {v: [] for v in variants}
        for run in range(args.runs):
            for variant in variants:
                tree = variant.tree
                with tempfile.TemporaryDirectory() as tmp:
                    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'e2e.db'}"
                    result = await run_once(
                        url=url,
                        chats=chats,
                        messages=args.messages,
                        mode=args.mode,
                        processes=variant.processes,
                        tenants=args.tenants,
                        cpu_budget=args.cpu_budget,
                        tmp=Path(tmp),
                        profile=args.profile,
                        profile_gil=args.profile_gil,
                        tree=tree,
                    )
                    results[variant].append(result)
                    backend = url.split(":", 1)[0]
                    label = f"{args.mode}, {variant.processes} process(es), {backend}"
                    if args.cpu_budget:
                        label += f", {args.cpu_budget:g} core(s) each"
                    if len(variants) > 1 or args.runs > 1:
                        label += f", {tree.name} run {run + 1}"
                    report(result, label)
        if len(variants) > 1 or args.runs > 1:
            compare(variants, results)


if __name__ == "__main__":
    asyncio.run(main())
