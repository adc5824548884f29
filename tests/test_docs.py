"""README and docs/ quote the committed reference run, and say only what it gives.

The generated parts (between ``<!-- iobench:NAME -->`` markers) are written
again from results/reference-full and compared with the committed files, so a
number edited by hand, or a change to a verdict's code without ``iobench docs``,
fails here. The rest checks what a newcomer meets first: a short README whose
figure and links exist, and whose test command is the one CI runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iobench.benchmarks.report.churn import judge_churn
from iobench.benchmarks.report.claims import judge_claims
from iobench.benchmarks.report.docs import END, REGIONS, START, differences, write_docs
from iobench.benchmarks.report.finding import run_findings
from iobench.benchmarks.report.scale import judge_scale, memory_per_connection
from iobench.benchmarks.report.work import judge_work
from iobench.benchmarks.results.loader import Run, load_run

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "results" / "reference-full"
README_MAX_LINES = 150
DOC_FILES = sorted({ROOT / name for name, _, _ in REGIONS})
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def reference() -> Run:
    return load_run(REFERENCE)


def iobench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iobench", *args], capture_output=True,
                          text=True, timeout=120)


def copy_of_docs(tmp_path: Path) -> tuple[Path, Run]:
    """README.md and docs/ in a folder of their own, the committed runs linked beside them,
    and the reference run read through the link (so the docs' links stay relative)."""
    shutil.copy2(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "results").symlink_to(ROOT / "results")
    return tmp_path, load_run(tmp_path / "results" / REFERENCE.name)


def findings_region(text: str) -> tuple[int, int]:
    start = text.index(START.format(name="findings"))
    return start, text.index(END.format(name="findings"), start)


def test_the_committed_docs_are_what_the_reference_run_gives(reference: Run) -> None:
    found = differences(reference, ROOT)
    assert not found, ("generated parts differ from results/reference-full; run "
                       "`iobench docs results/reference-full`:\n" + "\n".join(found))


def test_a_number_edited_by_hand_in_the_findings_fails(tmp_path: Path) -> None:
    root, reference = copy_of_docs(tmp_path)
    readme = root / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if START.format(name="findings") in line)
    # The first row of the findings table that quotes a number: one digit changed.
    line = next(i for i in range(start, len(lines)) if lines[i].startswith("| ")
                and not lines[i].startswith("| finding |") and re.search(r"\d", lines[i]))
    digit = re.search(r"\d", lines[line])
    assert digit is not None
    lines[line] = (lines[line][:digit.start()] + str((int(digit.group()) + 1) % 10)
                   + lines[line][digit.end():])
    readme.write_text("".join(lines))
    line += 1  # numbered from 1
    (difference,) = differences(reference, root)
    assert difference.startswith(f"README.md:{line}:"), difference

    checked = iobench("docs", str(reference.directory), "--root", str(root), "--check")
    assert checked.returncode == 1
    assert checked.stdout.startswith(f"README.md:{line}:"), checked.stdout


def test_writing_restores_the_generated_parts_and_keeps_the_rest(tmp_path: Path) -> None:
    root, reference = copy_of_docs(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    start, end = findings_region(text)
    body_start = text.index("\n", start) + 1
    # A hand-written line outside the markers stays; the region is written anew.
    hand = "A line written by hand, outside the markers.\n"
    readme.write_text(hand + text[:body_start] + "stale\n" + text[end:])
    assert write_docs(reference, root) == [readme]
    assert readme.read_text() == hand + text
    assert sorted(p.name for p in readme.parent.iterdir()) == ["README.md", "docs", "results"]
    assert write_docs(reference, root) == []  # nothing left to write


def test_every_verdict_reaches_the_findings(reference: Run) -> None:
    verdicts = {c.key: c.verdict for c in judge_claims(reference) + judge_scale(reference)}
    found = {f.key: f.verdict for f in run_findings(reference)}
    assert {k: v for k, v in found.items() if k in verdicts} == verdicts
    for finding in run_findings(reference):
        assert finding.summary and finding.title, finding.key


def test_readme_findings_reach_beyond_the_article(reference: Run) -> None:
    """Churn's and work's verdicts, memory per idle connection for every model, and the
    article's code as printed in two sentences: each in README from the run."""
    found = {f.key: f for f in run_findings(reference)}
    churn = {r.key for r in judge_churn(reference)}
    work = {r.key for r in judge_work(reference)}
    assert churn and work and churn | work <= set(found)
    readme = (ROOT / "README.md").read_text()
    memory = found["memory_per_idle_connection"]
    scale_models = {g.model for g in reference.scenario("scale")}
    measured = {m.model for m in memory_per_connection(reference)}
    assert measured and measured <= scale_models
    assert all(f"{model} " in memory.summary for model in measured)
    article = found["article_as_printed"]
    assert article.summary.count(". ") + article.summary.endswith(".") == 2, article.summary
    for finding in (memory, article, *(found[key] for key in churn | work)):
        assert finding.summary in readme, finding.key


def test_no_placeholder_is_left() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        assert "MEASURED:" not in text, path
    for relative, name, _ in REGIONS:
        text = (ROOT / relative).read_text()
        body = text.split(START.format(name=name), 1)[1].split(END.format(name=name), 1)[0]
        assert body.strip(), f"{relative}: the {name} region is empty"


def test_readme_is_short_and_its_figure_is_in_the_repository() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    images = MARKDOWN_IMAGE.findall(text)
    assert images, "README shows no figure"
    for target in images:
        assert (ROOT / target).is_file(), target
        assert target.startswith("results/reference-full/plots/"), target


def test_every_link_in_readme_and_docs_resolves() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in MARKDOWN_LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: {target}"


def test_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    (command,) = [line for line in ci if "pip install" in line and not line.startswith("#")]
    readme = (ROOT / "README.md").read_text().splitlines()
    assert f"    {command}" in readme, command


@pytest.mark.parametrize(("args", "fragment"), [
    (["no/such/run"], "no/such/run"),
    ([str(REFERENCE), "--root", "{tmp}"], "README.md"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], fragment: str,
                                          tmp_path: Path) -> None:
    result = iobench("docs", *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


def test_a_file_without_its_markers_is_named(tmp_path: Path) -> None:
    root, reference = copy_of_docs(tmp_path)
    findings = root / "docs" / "findings.md"
    findings.write_text(findings.read_text().replace(START.format(name="findings"), ""))
    result = iobench("docs", str(reference.directory), "--root", str(root))
    assert result.returncode == 2
    assert "findings.md" in result.stderr and START.format(name="findings") in result.stderr
    assert (root / "README.md").read_text() == (ROOT / "README.md").read_text()
