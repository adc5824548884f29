"""The report's reading order: summary with figures first, scenario sections, citations."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from iobench.benchmarks.report.claims import judge_claims
from iobench.benchmarks.report.document import write_all
from iobench.benchmarks.results.loader import load_run

QUICK_RUN = Path(__file__).parents[1] / "data" / "quick-run" / "results.json"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("quick")
    (directory / "results.json").write_bytes(QUICK_RUN.read_bytes())
    write_all(directory)
    return directory


def test_summary_comes_first_then_scenarios_then_citations(quick_report: Path) -> None:
    text = (quick_report / "REPORT.md").read_text(encoding="utf-8")
    order = ["## Summary", "## Results by scenario", "## Cite these figures",
             "## Environment", "## Method"]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions)
    summary = text[:positions[1]]
    for claim in judge_claims(load_run(quick_report)):
        assert f"| {claim.claim} | {claim.verdict} | {claim.reason} |" in summary
        section = summary[summary.index(f"### {claim.claim}: {claim.verdict}"):]
        section = section[:section.find("\n### ", 4) % len(section) or len(section)]
        assert re.search(r"!\[[^]]+\]\(plots/\w+\.png\)", section), \
            f"{claim.claim}: no figure beside the verdict"


def test_each_scenario_shows_its_figure_above_a_compact_table_then_folded_tables(
        quick_report: Path) -> None:
    text = (quick_report / "REPORT.md").read_text(encoding="utf-8")
    results = text[text.index("## Results by scenario"):text.index("## Cite these figures")]
    sections = re.split(r"\n### ", results)[1:]
    assert len(sections) == 5
    for section in sections:
        title = section.splitlines()[0]
        details = section.index("<details><summary>Full tables")
        compact = section.index("| model |")
        assert compact < details, f"{title}: compact table not before the full tables"
        if not title.startswith("Neighbour"):
            assert section.index("![") < compact, f"{title}: figure not above its table"
        assert "(min-max)" not in section[:details].split("| model |")[1].split("\n\n")[0]


def visible_numbers(text: str) -> list[str]:
    return sorted(re.findall(r"\d[\d,.]*\d|\d", text))


def test_markdown_and_html_carry_the_same_content(quick_report: Path) -> None:
    markdown = (quick_report / "REPORT.md").read_text(encoding="utf-8")
    page = (quick_report / "report.html").read_text(encoding="utf-8")
    page = re.sub(r"<(style|title)>.*?</\1>", "", page, flags=re.S)
    page = re.sub(r'src="data:image/png;base64,[^"]+"', "", page)
    page_text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    markdown_text = re.sub(r"\]\([^)]+\)", "]", markdown)  # image paths are files in MD only
    markdown_text = html.unescape(re.sub(r"<[^>]+>", " ", markdown_text))
    assert visible_numbers(markdown_text) == visible_numbers(page_text)
    assert page.count("<details>") == markdown.count("<details>") > 0
    assert page.count("<img ") == len(re.findall(r"!\[", markdown)) > 0


def test_html_colours_each_verdict(quick_report: Path) -> None:
    page = (quick_report / "report.html").read_text(encoding="utf-8")
    for claim in judge_claims(load_run(quick_report)):
        verdict = str(claim.verdict)
        assert f'<td class="{verdict.replace(" ", "-")}">{verdict}</td>' in page
    assert "td.holds {" in page and "td.does-not-hold {" in page


def test_the_environment_names_the_noisy_machine_states(tmp_path: Path) -> None:
    from iobench.benchmarks.report.document import environment_blocks
    from tests.benchmarks.results_factory import make_results, write_run

    data = make_results(repetitions=1, scenarios=("idle",))
    data["environment"]["system"] = [
        {"name": "load average", "value": "3.10 (1 min)", "verdict": "warn", "why": "busy"},
        {"name": "ASLR", "value": "full", "verdict": "note", "why": ""}]
    run = load_run(write_run(tmp_path / "run", data))
    rows = {row[0]: row[1] for block in environment_blocks(run)
            for row in getattr(block, "rows", [])}
    assert rows["noisy machine state"] == "load average: 3.10 (1 min)"
    data["environment"].pop("system")
    run = load_run(write_run(tmp_path / "old", data))
    rows = {row[0]: row[1] for block in environment_blocks(run)
            for row in getattr(block, "rows", [])}
    assert rows["noisy machine state"] == "not recorded"
