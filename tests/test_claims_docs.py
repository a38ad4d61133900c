"""docs/update_claims.py: the catalogue's and README's claims tables come from the lessons' summaries."""

import importlib.util
import json
import re
from pathlib import Path

from dlbasics.lessons import LESSONS

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("update_claims", ROOT / "docs" / "update_claims.py")
update_claims = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_claims)


def claim(holds: bool, n: int = 5) -> dict:
    return {"code": "L9", "text": "a is small", "condition": "measure < 0.1", "shows_it": not holds, "holds": holds,
            "k": 5 if holds else 2, "n": n, "mean": 0.05, "low": 0.01 if n > 1 else None,
            "high": 0.09 if n > 1 else None}


def write(out: Path, name: str, version: int, claims: list[dict]) -> None:
    folder = out / f"lesson_{name}" / f"version_{version}"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"lesson": name, "fast": False, "claims": claims}))


def test_a_block_gets_the_newest_summarys_claims_and_a_lesson_without_one_keeps_its_table(tmp_path):
    write(tmp_path, "a", 2, [claim(False)])
    write(tmp_path, "a", 10, [claim(True), claim(False, n=1)])  # version 10 is newer than 2
    text = "x\n<!-- claims:a -->\nstale\n<!-- /claims -->\n<!-- claims:b -->\nkept\n<!-- /claims -->\n"
    new = update_claims.update(text, tmp_path, ["a", "b"])
    block = new.split("<!-- claims:a -->\n")[1].split("<!-- /claims -->")[0]
    assert "| yes | 5 of 5 | 0.05 [0.01, 0.09] |" in block and "| **no** | 2 of 1 | 0.05 (one seed) |" in block
    assert "stale" not in block and "<!-- claims:b -->\nkept\n" in new


def test_the_all_table_waits_for_every_lesson(tmp_path):
    write(tmp_path, "a", 0, [claim(True)])
    text = "<!-- claims:all -->\nold\n<!-- /claims -->\n"
    assert update_claims.update(text, tmp_path, ["a", "b"]) == text
    write(tmp_path, "b", 0, [claim(False)])
    assert update_claims.update(text, tmp_path, ["a", "b"]).count("| L9: a is small") == 2


def test_the_catalogue_has_a_claims_table_for_every_lesson_and_the_readme_one_for_all():
    catalogue = (ROOT / "docs" / "lessons.md").read_text()
    for name in LESSONS:
        assert f"<!-- claims:{name} -->" in catalogue, name
    assert "<!-- claims:all -->" in (ROOT / "README.md").read_text()


def cells(row: str) -> int:
    """The cells of a markdown table row: its unescaped bars, less one."""
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_a_bar_in_a_claims_text_is_escaped_so_its_row_keeps_five_cells(tmp_path):
    write(tmp_path, "a", 0, [{**claim(True), "text": "the mean |grad| is small"}])
    row = update_claims.update("<!-- claims:a -->\nold\n<!-- /claims -->\n", tmp_path, ["a"]).split("\n")[3]
    assert "the mean \\|grad\\| is small" in row and cells(row) == 5


def test_every_row_of_the_readmes_and_the_catalogues_claims_tables_has_five_cells():
    for path in (ROOT / "README.md", ROOT / "docs" / "lessons.md"):
        for block in update_claims.BLOCK.finditer(path.read_text()):
            counts = {cells(line) for line in block.group(3).splitlines() if line.startswith("|")}
            assert counts == {5}, (path.name, block.group("name"), counts)
