"""report.html in a real browser: every image loads, nothing is wider than the window,
the page is not blank, and the verdicts and a figure are on the first screen.

Headless Chromium loads a copy of the report with a small script appended that
measures the laid-out page after the load event and writes the result into the
DOM, which ``--dump-dom`` prints. Skipped, with the reason, where no Chromium is
installed (.ci/run installs Debian's ``chromium`` when it runs as root).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report.document import REPORT_HTML, write_all

QUICK_RUN = Path(__file__).parents[1] / "data" / "quick-run" / "results.json"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Flags that work headless as root in a container, with no network and no profile.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--virtual-time-budget=10000")
BROWSER_TIMEOUT_S = 90
FIRST_SCREEN_PX = 900
CLAIMS_IN_SUMMARY = 4

# Runs after the load event; its JSON lands in <pre id="browser-check">.
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const width = window.innerWidth;
  const images = [...document.images].map(img => ({
    alt: img.alt, complete: img.complete, natural: img.naturalWidth,
    right: img.getBoundingClientRect().right, top: img.getBoundingClientRect().top}));
  const wide = [...document.body.querySelectorAll("*")]
    .filter(el => !el.closest(".table") && el.getBoundingClientRect().right > width + 1)
    .map(el => el.tagName + ": " + (el.textContent || "").slice(0, 60));
  const summary = document.querySelector("table");
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({
    width, scrollWidth: document.documentElement.scrollWidth, images, wide,
    text: document.body.innerText.length,
    summaryRows: summary ? summary.tBodies[0].rows.length : 0,
    summaryBottom: summary ? summary.getBoundingClientRect().bottom : null,
  });
  document.body.appendChild(out);
});
</script>
"""


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


pytestmark = pytest.mark.skipif(
    browser() is None, reason="no Chromium installed (.ci/run installs Debian's chromium "
                              "as root; apt-get install chromium)")


def render(page: Path, profile: Path, width: int) -> dict[str, Any]:
    """Load ``page`` at ``width`` x FIRST_SCREEN_PX and return what the check script saw."""
    command = [browser(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--window-size={width},{FIRST_SCREEN_PX}", "--dump-dom", page.as_uri()]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        dom, errors = process.communicate(timeout=BROWSER_TIMEOUT_S)
    finally:
        # Chromium leaves helper processes (zygote, renderers) in its session: end them all.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    assert found, f"the check script did not run; chromium said: {errors[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("quick")
    (directory / "results.json").write_bytes(QUICK_RUN.read_bytes())
    write_all(directory)
    page = (directory / REPORT_HTML).read_text(encoding="utf-8")
    checked = directory / "report-checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    return checked


@pytest.mark.parametrize("width", [1400, 720])
def test_report_renders_with_every_image_and_no_overflow(report_page: Path, tmp_path: Path,
                                                         width: int) -> None:
    seen = render(report_page, tmp_path / "profile", width)
    assert seen["width"] == width
    assert seen["text"] > 5000, "the page is (nearly) blank"
    assert len(seen["images"]) >= 7 + CLAIMS_IN_SUMMARY
    broken = [i["alt"] for i in seen["images"] if not (i["complete"] and i["natural"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert seen["scrollWidth"] <= width, f"page is {seen['scrollWidth']} px wide at {width}"
    assert not seen["wide"], f"wider than the window: {seen['wide'][:3]}"
    assert all(i["right"] <= width for i in seen["images"])


def test_verdicts_and_a_figure_are_on_the_first_screen(report_page: Path,
                                                       tmp_path: Path) -> None:
    seen = render(report_page, tmp_path / "profile", 1400)
    assert seen["summaryRows"] == CLAIMS_IN_SUMMARY
    assert seen["summaryBottom"] <= FIRST_SCREEN_PX, "the verdicts run past the first screen"
    first_image = min(i["top"] for i in seen["images"])
    assert first_image < FIRST_SCREEN_PX - 200, \
        f"the first figure starts at {first_image:.0f} px, below the first screen"
