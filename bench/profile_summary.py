"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the samples are.

Run: ``.venv/bin/python bench/profile_summary.py bench/profile-sqlite-throughput.txt [--top 30]``.
Prints, per thread, the functions with the most samples on their stack (inclusive) and at the
top of it (self).
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", help="only threads whose name contains this")
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if args.thread and args.thread not in frames[0]:
            continue
        total += count
        threads[frames[0]] += count
        for frame in set(frames[1:]):
            inclusive[frame] += count
        own[frames[-1]] += count
    print(f"{total} samples")
    for name, count in threads.most_common():
        print(f"  {count / total:6.1%}  {name}")
    print("\ninclusive (on the stack):")
    for name, count in inclusive.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")
    print("\nself (top of the stack):")
    for name, count in own.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
