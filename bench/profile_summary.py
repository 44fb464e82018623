"""Summarise py-spy folded stacks (``py-spy record --format raw``, as ``e2e_bench.py --profile``
writes them): where the samples went, by function (self and inclusive) and by package.

    .venv/bin/python bench/profile_summary.py FILE [--top 30] [--within FUNCTION]

``--within`` keeps only the samples with FUNCTION on the stack (``AssistantTurn.__call__``,
say), so idle worker threads and the event loop's own waiting drop out.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match:
            frames.append((match["func"], match["file"]))
        else:
            frames.append((frame, ""))
    return frames


def _package(file: str) -> str:
    parts = file.replace("\\\\", "/").split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if file.startswith("<"):
        return file
    return parts[0].removesuffix(".py") if len(parts) > 1 else "python"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--within", help="only samples with this function on the stack")
    args = parser.parse_args()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        if args.within and f";{args.within} (" not in f";{stack}":
            continue
        total += count
        frames = _frames(stack)
        func, file = frames[-1]
        own[f"{func} ({file})"] += count
        packages[_package(file)] += count
        for name in {f"{f} ({p})" for f, p in frames}:
            inclusive[name] += count
    print(f"{total} samples\n\nby package (self)")
    for name, count in packages.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")
    print("\nby function (self)")
    for name, count in own.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")
    print("\nby function (inclusive)")
    for name, count in inclusive.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
