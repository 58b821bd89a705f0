"""Side-by-side loss table of two training runs over the same steps (e.g. the fast and the plain path).

    python -m tools.loss_table RUN_A/stats.jsonl RUN_B/stats.jsonl [--keys D/total,G/total,G/aus,D/gp]
                                 [--names fast,plain] [--markdown]

Prints one row per step logged by both runs: each key's value in A and B and B - A relative to |A|, then the
largest relative difference per key and whether each run's losses fell (mean of the last third of the rows
against the first third). Reads the JSON lines only, so it runs anywhere.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.logs import read_stats

DEFAULT_KEYS = "D/total,D/gp,G/total,G/aus,G/rec"


def by_step(path: Path) -> dict[int, dict]:
    """The run's logged records (``monitor.logs.read_stats``) keyed by training step."""
    return {record["step"]: record for record in read_stats(path)}


def relative(a: float, b: float) -> float:
    return (b - a) / max(abs(a), 1e-12)


def falls(values: list[float]) -> str:
    third = max(1, len(values) // 3)
    first, last = sum(values[:third]) / third, sum(values[-third:]) / third
    return f"{first:.4g} -> {last:.4g}"


def loss_table(a: dict[int, dict], b: dict[int, dict], keys: list[str], names: list[str], markdown: bool) -> str:
    steps = [s for s in sorted(a) if s in b and all(k in a[s] and k in b[s] for k in keys)]
    if not steps:
        raise SystemExit("the two runs share no logged step with all of: " + ", ".join(keys))
    header = ["step"] + [f"{k} {n}" for k in keys for n in names] + [f"{k} rel" for k in keys]
    rows = [header]
    for s in steps:
        rows.append([str(s)] + [f"{r[s][k]:.5g}" for k in keys for r in (a, b)]
                    + [f"{relative(a[s][k], b[s][k]):+.2%}" for k in keys])
    lines = _render(rows, markdown)
    for k in keys:
        worst = max(abs(relative(a[s][k], b[s][k])) for s in steps)
        trend = ", ".join(f"{n} {falls([r[s][k] for s in steps])}" for n, r in zip(names, (a, b)))
        lines.append(f"{k}: largest |{names[1]} - {names[0]}| / |{names[0]}| {worst:.2%}; first third -> last "
                     f"third: {trend}")
    return "\n".join(lines)


def _render(rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        out = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
        return out + ["| " + " | ".join(r) + " |" for r in rows[1:]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--keys", default=DEFAULT_KEYS)
    p.add_argument("--names", default="A,B")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    names = args.names.split(",")
    print(loss_table(by_step(args.a), by_step(args.b), args.keys.split(","), names, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
