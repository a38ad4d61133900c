"""The report page ``<out>/index.html``: every lesson's newest run, its claims, figures and tables, escaped, offline.

The lessons here are written by a real ``LessonContext`` (its summary.json, its figure PNGs) without training, so
the page tests take a second; ``test_lesson_api.py`` checks the page that a real lesson run writes. The browser test
renders the page in headless Chromium (Debian's ``chromium`` package) and skips, saying so, where none is installed.
"""

import html
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dlbasics.figures import new_figure
from dlbasics.lessons.claims import Claim, ClaimResult
from dlbasics.lessons.context import LessonContext
from dlbasics.lessons.report_page import PAGE, headless_browser, newest_runs, write_page
from dlbasics.lessons.stats import estimate

HOSTILE = "<script>alert('x')</script> & \"quotes\""  # text a page must show as text, never run or parse


class PageParts(HTMLParser):
    """What a test reads back from the page: section ids, <img> attributes, scripts, external addresses."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.scripts = 0
        self.addresses: list[str] = []
        self.viewport = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts += 1
        elif tag == "meta" and attrs.get("name") == "viewport":
            self.viewport = "width=device-width" in attrs["content"]
        self.addresses += [attrs[a] for a in ("src", "href") if a in attrs]


def fake_lesson(out: Path, name: str, title: str, holds: bool = True, note: str = "a note") -> LessonContext:
    """A lesson folder as a run leaves it (summary.json, summary.md, two figure PNGs), without training."""
    ctx = LessonContext(name, out, seeds=2)
    claim = Claim(f"{title.split()[0]}.a", f"{title}: the measure is positive", lambda runs: 0.0, runs=("a",),
                  above=0.0)
    values = [0.5, 0.7] if holds else [-0.5, 0.7]
    ctx.claims = [ClaimResult(claim, (0, 1), estimate(values))]
    ctx.report.add("table one", "variant", acc=[0.8, 0.9], epochs=12)
    ctx.report.add_key(**{"key number": 0.123456})
    ctx.report.notes.append(note)
    for i, width in enumerate((6.0, 12.0)):  # a figure of the usual size, and a wide one
        fig = new_figure(width, 3.0)
        fig.add_subplot().plot([0, 1], [i, 1 - i])
        fig.suptitle(f"{title} figure {i}")
        ctx.figure(fig, f"{name}_figure_{i}")
    ctx.write_summary(title, 1.5)
    return ctx


@pytest.fixture
def out(tmp_path: Path) -> Path:
    fake_lesson(tmp_path, "dropout", "L4 old run of dropout")  # version_0: replaced on the page by version_1
    fake_lesson(tmp_path, "dropout", "L4 Dropout and weight decay", holds=False, note=HOSTILE)
    fake_lesson(tmp_path, "activations", "L1 Activation functions")
    (tmp_path / "lesson_activations" / "version_7").mkdir()  # a run still under way: no summary.json yet
    write_page(tmp_path)
    return tmp_path


def test_the_page_shows_the_newest_finished_run_of_every_lesson_in_catalogue_order(out):
    text = (out / PAGE).read_text()
    assert PageParts(text).sections == ["lesson-activations", "lesson-dropout"]  # L1 before L4, whatever ran first
    assert "L4 Dropout and weight decay" in text and "old run of dropout" not in text
    assert [folder.name for folder, _ in newest_runs(out)] == ["version_0", "version_1"]


def test_every_image_is_a_relative_png_next_to_the_page_with_alt_text_and_its_size(out):
    parts = PageParts((out / PAGE).read_text())
    assert len(parts.images) == 4
    for image in parts.images:
        path = out / image["src"]
        assert not Path(image["src"]).is_absolute() and path.is_file() and path.suffix == ".png"
        assert image["alt"].endswith(("figure 0", "figure 1")) and int(image["width"]) in (600, 1200)
        assert "max-width" in image["style"]


def test_the_page_is_self_contained_and_fits_a_phone(out):
    parts = PageParts((out / PAGE).read_text())
    assert parts.viewport and parts.scripts == 0
    assert not [a for a in parts.addresses if "://" in a or a.startswith("//")], parts.addresses  # no network


def test_claims_show_k_of_n_the_interval_and_the_verdict_in_words_not_colour_alone(out):
    text = (out / PAGE).read_text()
    dropout = text[text.index("id='lesson-dropout'"):]
    assert "class='fails' data-label='verdict'>&#10007; does not hold" in dropout  # colour class and words
    assert "1 of 2" in dropout and "0.1 [-7.524, 7.724]" in dropout  # k of N; mean [95% t-interval]
    activations = text[text.index("id='lesson-activations'"):text.index("id='lesson-dropout'")]
    assert "class='holds' data-label='verdict'>&#10003; holds" in activations and "2 of 2" in activations
    assert "dlbasics lesson dropout --seeds 2" in dropout  # the command that reruns it
    assert "0.85 [0.2147, 1.485]" in dropout and "key number: 0.1235" in dropout  # its table and key numbers


def test_all_text_is_escaped(out):
    text = (out / PAGE).read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in text


def test_a_later_lesson_keeps_the_others_and_the_page_is_replaced_whole(out):
    fake_lesson(out, "backprop", "L2 Backpropagation")
    write_page(out)
    assert PageParts((out / PAGE).read_text()).sections == ["lesson-activations", "lesson-backprop", "lesson-dropout"]
    assert [p.name for p in out.iterdir() if p.is_file()] == [PAGE]  # no temporary file left beside it


def test_a_summary_written_before_the_page_existed_still_shows(out):
    summary_path = out / "lesson_activations" / "version_0" / "summary.json"
    summary = json.loads(summary_path.read_text())
    for added in ("seeds_text", "command", "figure_titles", "text"):
        del summary[added]
    summary_path.write_text(json.dumps(summary))
    write_page(out)
    assert "dlbasics lesson activations" in (out / PAGE).read_text()


# The page in a frame of a given width (headless Chromium's window is at least 500 pixels wide), and a script that
# reports what the frame loaded; the page itself has no script. The image that does not exist is the control: the
# probe must see it fail, or it could not see any failure.
PROBE = """<!DOCTYPE html>
<html><body style="margin: 0">
<iframe id="page" src="index.html" style="width: WIDTHpx; height: 900px; border: 0"></iframe>
<img id="control" src="missing.png" alt="missing">
<script>
const loaded = image => image.complete && image.naturalWidth > 0;
window.addEventListener("load", () => {
  const frame = document.getElementById("page"), doc = frame.contentDocument;
  const report = {sections: [...doc.querySelectorAll("section")].map(s => s.id),
                  images: [...doc.images].map(i => [i.getAttribute("src"), loaded(i)]),
                  control: loaded(document.getElementById("control")),
                  pageWidth: doc.documentElement.scrollWidth, frameWidth: frame.contentWindow.innerWidth};
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify(report);
  document.body.appendChild(probe);
});
</script>
</body></html>
"""


def render(page: Path, width: int) -> dict:
    """What headless Chromium loaded of ``page`` in a frame ``width`` pixels wide (the probe's report)."""
    probe = page.with_name("probe.html")
    probe.write_text(PROBE.replace("WIDTH", str(width)))
    command = [headless_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
               "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    return json.loads(html.unescape(dom[start:dom.index("</pre>", start)]))


@pytest.mark.skipif(headless_browser() is None, reason="no headless browser: `apt-get install chromium` (Debian) "
                                                       "to render the report page in this test")
@pytest.mark.parametrize("width", [1280, 390])  # a desktop window, and a phone's
def test_a_real_browser_loads_every_image_and_section_without_sideways_scrolling(out, width):
    report = render(out / PAGE, width)
    assert report["control"] is False
    assert report["sections"] == ["lesson-activations", "lesson-dropout"]
    assert len(report["images"]) == 4 and all(loaded for _, loaded in report["images"]), report["images"]
    # No sideways scrolling of the page: its wide tables and commands scroll inside themselves.
    assert report["frameWidth"] == width and report["pageWidth"] <= width


def test_a_figure_deleted_since_the_run_is_named_not_shown_broken(out):
    (out / "lesson_dropout" / "version_1" / "figures" / "dropout_figure_1.png").unlink()
    write_page(out)
    text = (out / PAGE).read_text()
    assert "dropout_figure_1.png: L4 Dropout and weight decay figure 1 (the file is missing)" in text
    assert [i["src"] for i in PageParts(text).images if "version_1" in i["src"]] == [
        "lesson_dropout/version_1/figures/dropout_figure_0.png"]
