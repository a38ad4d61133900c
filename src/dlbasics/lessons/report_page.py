"""The lessons' report page, ``<out>/index.html``: the newest run of every lesson in ``<out>`` on one page.

Built from each lesson's ``summary.json`` alone: its title, its claims (k of N seeds, mean and 95% interval, holds
or not, in words and colour), its figures (the PNGs next to it, linked relatively), its key numbers and tables, and
the command that reruns it. Self-contained: no network, no script; it reads at phone width too. ``dlbasics lesson``
rewrites it after every lesson, so a later ``dlbasics lesson dropout`` keeps the other lessons on it.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlbasics.lessons import LESSONS

BROWSERS = ("chromium", "chromium-browser", "google-chrome")  # that can render the page headless


def headless_browser() -> str | None:
    """The path of a browser that renders the page headless (Debian's ``chromium``, ...), or None."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)

PAGE = "index.html"
WIDE = 720  # pixels: a figure wider than this spans the page instead of sharing a row with another
# Plain CSS: readable fonts, tables that scroll sideways on a narrow screen, figures never wider than the window.
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.45; margin: 0 auto;
       max-width: 70rem; padding: 0 1rem 3rem; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.35rem; margin-top: 2.5rem; border-top: 2px solid #ddd; padding-top: 1rem; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9em; background: #f3f3f3;
            padding: .1em .3em; border-radius: 3px; }
pre { padding: .6em; overflow-x: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .3rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.holds { background: #d9f2dd; color: #0b5a1a; font-weight: 600; white-space: nowrap; }
.fails { background: #fbe0dc; color: #8a1c0f; font-weight: 600; white-space: nowrap; }
.figures { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 30rem), 1fr)); }
figure { margin: 0; }
figure.wide { grid-column: 1 / -1; }
figure img { width: 100%; max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
.meta { color: #555; font-size: .9rem; }
/* Phone width: each claim becomes a card, its cells labelled, instead of a table squeezed into narrow columns. */
@media (max-width: 40rem) {
  table.claims, table.claims tbody, table.claims tr, table.claims td { display: block; }
  table.claims tr:first-child { display: none; }
  table.claims tr { border: 1px solid #ccc; margin-bottom: .8rem; }
  table.claims td { border: none; border-bottom: 1px solid #eee; white-space: normal; }
  table.claims td::before { content: attr(data-label) ": "; font-weight: 600; color: #555; }
}
"""


def write_page(out: Path) -> Path:
    """Write ``<out>/index.html`` for the lessons found in ``<out>`` (atomically: a reader never sees half a page)."""
    out = Path(out)
    text = page_html(newest_runs(out), out)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=out, prefix=".index.", suffix=".html",
                                     delete=False) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)  # as a plainly written file would be (a temporary file is private)
    os.replace(tmp.name, out / PAGE)
    return out / PAGE


def newest_runs(out: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(folder, summary)`` of the newest finished run (highest ``version_N`` with a summary.json) of each
    ``lesson_*`` folder in ``out``, in catalogue order (lessons it does not know after, by name)."""
    found = []
    for lesson_dir in Path(out).glob("lesson_*"):
        versions = [(int(m.group(1)), p) for p in lesson_dir.glob("version_*")
                    if (m := re.fullmatch(r"version_(\d+)", p.name)) and (p / "summary.json").is_file()]
        if versions:
            folder = max(versions)[1]
            found.append((folder, with_defaults(json.loads((folder / "summary.json").read_text()))))
    order = list(LESSONS)
    return sorted(found, key=lambda run: (order.index(run[1]["lesson"]) if run[1]["lesson"] in order else len(order),
                                          run[1]["lesson"]))


def with_defaults(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary.json written before the page existed lacks what only the page reads: fill it in plainly."""
    summary.setdefault("seeds_text", f"from seed {summary['seed']}")
    summary.setdefault("command", f"dlbasics lesson {summary['lesson']}")
    summary.setdefault("figure_titles", {})
    summary.setdefault("text", "")
    return summary


def page_html(runs: list[tuple[Path, dict[str, Any]]], out: Path) -> str:
    """The whole page in ``out``: a contents list (how many claims hold per lesson), then one section per lesson."""
    from dlbasics.lessons.claims import MIN_FRACTION

    contents = "".join(f"<li><a href='#{anchor(s)}'>{esc(s['title'])}</a> <span class='meta'>"
                       f"{sum(c['holds'] for c in s['claims'])} of {len(s['claims'])} claims hold</span></li>"
                       for _, s in runs)
    sections = "".join(lesson_section(summary, folder, lambda path: relative_src(path, out))
                       for folder, summary in runs)
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dlbasics lessons</title>
<style>{STYLE}</style>
</head>
<body>
<h1>dlbasics lessons</h1>
<p class="meta">The newest run of each lesson in this folder, written {esc(written)}. A claim <em>holds</em> when
its condition is met in at least {MIN_FRACTION:.0%} of the seeds (k of N); its measure is shown as the mean over the
seeds with its 95% Student-t interval. Each lesson's own summary.md and TensorBoard logs are in its folder.</p>
<ul>{contents or "<li>No lesson has run in this folder yet.</li>"}</ul>
{sections}
</body>
</html>
"""


def lesson_section(summary: dict[str, Any], folder: Path, image_src: Callable[[Path], str]) -> str:
    """One lesson's section; ``image_src`` turns a figure's path into its ``<img src>`` (relative, or inline)."""
    budget = " (fast budget)" if summary["fast"] else ""
    meta = f"{summary['seeds_text']}{budget}, {summary['seconds']:.1f} s"
    parts = [f"<section id='{anchor(summary)}'>", f"<h2>{esc(summary['title'])}</h2>",
             f"<p class='meta'>{esc(meta)}; folder <code>{esc(folder.parent.name)}/{esc(folder.name)}</code>, "
             "with summary.md and the TensorBoard logs</p>",
             f"<p>Rerun it:</p><pre>{esc(summary['command'])}</pre>"]
    if summary["claims"]:
        parts += ["<h3>Claims</h3>", claims_table(summary["claims"])]
    if summary["figures"]:
        parts += ["<div class='figures'>", *[figure_html(folder / "figures" / name,
                                                         summary["figure_titles"].get(name, name), image_src)
                                             for name in summary["figures"]], "</div>"]
    if summary["key"]:
        items = "".join(f"<li>{esc(name)}: {esc(number(value))}</li>" for name, value in summary["key"].items())
        parts += ["<h3>Key numbers</h3>", f"<ul>{items}</ul>"]
    for exercise, rows in summary["tables"].items():
        parts += [f"<h3>{esc(exercise)}</h3>", table(rows)]
    if summary.get("text"):
        parts += ["<h3>Worked computation</h3>", f"<pre>{esc(summary['text'].rstrip())}</pre>"]
    if summary["notes"]:
        items = "".join(f"<li>{esc(note)}</li>" for note in summary["notes"])
        parts += ["<h3>Notes</h3>", f"<ul>{items}</ul>"]
    return "\n".join([*parts, "</section>\n"])


def claims_table(claims: list[dict[str, Any]]) -> str:
    columns = ("claim", "verdict", "k of N seeds", "measure: mean [95% interval]", "holds when", "what it says",
               "setting")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    rows = []
    for c in claims:
        verdict = ("holds", "&#10003; holds") if c["holds"] else ("fails", "&#10007; does not hold")
        cells = [("", esc(c["code"])), verdict, ("num", f"{c['k']} of {c['n']}"), ("num", esc(number(c))),
                 ("num", esc(c["condition"])), ("", esc(c["text"])), ("", esc(c["setting"]))]
        rows.append("<tr>" + "".join(f"<td class='{kind}' data-label='{label}'>{text}</td>"
                                     for label, (kind, text) in zip(columns, cells)) + "</tr>")
    return f"<div class='scroll'><table class='claims'>{head}{''.join(rows)}</table></div>"


def table(rows: dict[str, dict[str, Any]]) -> str:
    """``{variant: {metric: value}}`` as a table, one column per metric (in order of first appearance)."""
    columns = list(dict.fromkeys(column for row in rows.values() for column in row))
    head = "<tr><th>variant</th>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"
    body = "".join(f"<tr><td>{esc(variant)}</td>" + "".join(f"<td class='num'>{esc(number(row.get(c, '')))}</td>"
                                                            for c in columns) + "</tr>"
                   for variant, row in rows.items())
    return f"<div class='scroll'><table>{head}{body}</table></div>"


def figure_html(path: Path, title: str, image_src: Callable[[Path], str]) -> str:
    """A figure at most its own size (a wide one across the whole grid), shrunk to the window on a phone."""
    if not path.is_file():  # deleted since the lesson ran: say so rather than show a broken image
        return f"<figure><figcaption>{esc(path.name)}: {esc(title)} (the file is missing)</figcaption></figure>"
    width, height = png_size(path)
    wide = " class='wide'" if width > WIDE else ""
    src = esc(image_src(path))
    img = (f"<img src='{src}' alt='{esc(title)}' width='{width}' height='{height}' "
           f"style='max-width: min(100%, {width}px)'>")
    if not src.startswith("data:"):  # a tap opens the PNG at full size (a wide figure is small on a phone)
        img = f"<a href='{src}'>{img}</a>"
    return f"<figure{wide}>{img}<figcaption>{esc(path.name)}: {esc(title)}</figcaption></figure>"


def png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` in pixels, from the PNG's header (its IHDR chunk, right after the 8-byte signature)."""
    with open(path, "rb") as file:
        header = file.read(24)
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"figure {path} is not a PNG file")
    return struct.unpack(">II", header[16:24])


def number(value: Any) -> str:
    """A summary.json value as summary.md prints it: 4 significant digits; a per-seed value (a dict with its mean,
    interval and values) as ``mean [low, high]``."""
    from dlbasics.lessons.context import fmt
    from dlbasics.lessons.stats import Estimate

    if isinstance(value, dict) and "mean" in value:
        value = Estimate(tuple(value["values"]), value["mean"], value["low"], value["high"])
    return fmt(value)


def relative_src(path: Path, out: Path) -> str:
    """The figure's address relative to the page in ``out``, with the characters a URL needs escaped."""
    from urllib.parse import quote

    return quote(path.relative_to(out).as_posix())


def data_uri(path: Path) -> str:
    """The PNG inline, for a page that is not next to it (a notebook's view of a lesson)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def anchor(summary: dict[str, Any]) -> str:
    return "lesson-" + re.sub(r"[^A-Za-z0-9_-]", "-", summary["lesson"])


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)
