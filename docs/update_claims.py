"""Rewrite the claims tables of docs/lessons.md and README.md from the newest lesson summaries.

    python docs/update_claims.py [OUT]   # OUT: the lessons' output folder (default: lightning_logs)

Each table sits between ``<!-- claims:NAME -->`` and ``<!-- /claims -->`` and is made from
``OUT/lesson_NAME/version_N/summary.json`` with the highest N; a lesson without a summary keeps its table.
``<!-- claims:all -->`` is one table of every lesson's claims (the README's), made only when every lesson has a
summary.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from dlbasics.lessons.markdown import cell

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- claims:(?P<name>[\w-]+) -->\n)(.*?)(<!-- /claims -->)", re.DOTALL)


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


HEADER = ["| claim | setting | holds | seeds | mean [95% interval] |", "|---|---|---|---|---|"]


def rows(summary: dict) -> list[str]:
    """One markdown table row per claim of a lesson's summary."""
    out = []
    for c in summary["claims"]:
        spread = f"[{number(c['low'])}, {number(c['high'])}]" if c["low"] is not None else "(one seed)"
        out.append(f"| {cell(c['code'])}: {cell(c['text'])} ({cell(c['condition'])}) | "
                   f"{'shows it' if c['shows_it'] else 'published'}"
                   f" | {'yes' if c['holds'] else '**no**'} | {c['k']} of {c['n']} | {number(c['mean'])} {spread} |")
    return out


def table(summaries: list[dict], command: str) -> str:
    fast = " (fast budget)" if any(s["fast"] for s in summaries) else ""
    body = [row for summary in summaries for row in rows(summary)]
    return "\n".join(HEADER + body) + f"\n\nMeasured by `{command}`{fast} on 2 CPU cores.\n"


def newest(out: Path, name: str) -> dict | None:
    versions = sorted(out.glob(f"lesson_{name}/version_*/summary.json"),
                      key=lambda p: int(p.parent.name.removeprefix("version_")))
    return json.loads(versions[-1].read_text()) if versions else None


def update(text: str, out: Path, lessons: list[str]) -> str:
    def replace(match: re.Match) -> str:
        name = match["name"]
        summaries = [newest(out, n) for n in (lessons if name == "all" else [name])]
        if any(s is None for s in summaries):
            return match.group(0)
        return match.group(1) + table(summaries, f"dlbasics lesson {name}") + match.group(4)

    return BLOCK.sub(replace, text)


def main(argv: list[str]) -> int:
    from dlbasics.lessons import LESSONS

    out = Path(argv[0]) if argv else Path("lightning_logs")
    for path in (ROOT / "docs" / "lessons.md", ROOT / "README.md"):
        path.write_text(update(path.read_text(), out, list(LESSONS)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
