"""claims.json: valid against its schema, documented, and quoting results.json exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from iobench.benchmarks.report.citations import CLAIMS_JSON, CLAIMS_JSON_SCHEMA
from iobench.benchmarks.report.claims import CLAIMS
from iobench.cli import main
from tests.benchmarks.results_factory import make_results, trimmed_mean, write_run

QUICK_RUN = Path(__file__).parents[1] / "data" / "quick-run" / "results.json"
FORMATS_DOC = Path(__file__).parents[3] / "docs" / "formats.md"


@pytest.fixture(scope="module", params=["quick-run", "synthetic"])
def reported(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A run folder after `iobench report`, and its claims.json."""
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "quick-run":
        (directory / "results.json").write_bytes(QUICK_RUN.read_bytes())
    else:
        write_run(directory, make_results(repetitions=3))
    assert main(["report", str(directory)]) == 0
    return directory, json.loads((directory / CLAIMS_JSON).read_text(encoding="utf-8"))


def test_claims_json_validates_against_its_schema(reported: tuple[Path, dict[str, Any]]) -> None:
    _, claims = reported
    jsonschema.Draft202012Validator.check_schema(CLAIMS_JSON_SCHEMA)
    jsonschema.validate(claims, CLAIMS_JSON_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_the_schema_rejects_what_a_citation_cannot_use(
        reported: tuple[Path, dict[str, Any]]) -> None:
    _, claims = reported
    broken = json.loads(json.dumps(claims))
    del broken["claims"][0]["numbers"][0]["cells"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, CLAIMS_JSON_SCHEMA)
    broken = json.loads(json.dumps(claims))
    broken["claims"][0]["verdict"] = "probably"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, CLAIMS_JSON_SCHEMA)


def cell_values(results: dict[str, Any], key: str, metric: str) -> list[float]:
    return [c["metrics"][metric] for c in results["cells"]
            if c["key"] == key and c["status"] == "ok"
            and isinstance((c.get("metrics") or {}).get(metric), int | float)]


def test_every_number_is_the_figure_and_range_of_its_cells(
        reported: tuple[Path, dict[str, Any]]) -> None:
    directory, claims = reported
    results = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    assert claims["run_id"] == results["run_id"]
    assert claims["commit"] == results["environment"]["git_commit"]
    numbers = [n for c in claims["claims"] for n in c["numbers"]] + claims["headlines"]
    assert len(claims["headlines"]) >= 3 and len(numbers) > len(claims["headlines"])
    for number in numbers:
        (cell,) = number["cells"]
        values = cell_values(results, cell, number["metric"])
        assert values, f"{number['key']}: no such cell or metric in results.json"
        scale = 1 / (1024 * 1024) if number["metric"].endswith("_bytes") else 1.0
        assert number["value"] == pytest.approx(trimmed_mean(values) * scale, abs=1e-6)
        assert number["min"] == pytest.approx(min(values) * scale, abs=1e-6)
        assert number["max"] == pytest.approx(max(values) * scale, abs=1e-6)
        assert number["repetitions"] == len(values)


def test_every_claim_has_its_key_sentence_and_figure(
        reported: tuple[Path, dict[str, Any]]) -> None:
    directory, claims = reported
    assert [c["key"] for c in claims["claims"]] == [key for key, _, _ in CLAIMS]
    for claim in claims["claims"]:
        assert claim["sentence"].lower().startswith(claim["verdict"])
        assert claim["numbers"], f"{claim['key']} quotes no number"
        assert claim["figure"] and (directory / claim["figure"]).is_file()
    keys = [n["key"] for c in claims["claims"] for n in c["numbers"]]
    keys += [n["key"] for n in claims["headlines"]]
    assert len(keys) == len(set(keys)), "a key cites one figure"


def test_the_report_prints_the_same_citations(reported: tuple[Path, dict[str, Any]]) -> None:
    directory, claims = reported
    text = (directory / "REPORT.md").read_text(encoding="utf-8")
    cite = text[text.index("## Cite these figures"):]
    assert claims["run_id"] in cite and claims["commit"][:12] in cite
    for claim in claims["claims"]:
        assert f"| `{claim['key']}` | {claim['verdict']} |" in cite
    for number in claims["headlines"]:
        assert f"| `{number['key']}` | {number['sentence']} |" in cite


def schema_fields(schema: dict[str, Any]) -> set[str]:
    found = set(schema.get("properties", {}))
    for value in schema.get("properties", {}).values():
        found |= schema_fields(value)
        found |= schema_fields(value.get("items", {}))
    return found


def test_every_field_is_documented_in_formats_md() -> None:
    doc = FORMATS_DOC.read_text(encoding="utf-8")
    section = doc[doc.index("## claims.json"):]
    section = section[:section.index("\n## ", 4)] if "\n## " in section[4:] else section
    missing = sorted(f for f in schema_fields(CLAIMS_JSON_SCHEMA)
                     if not re.search(rf'"{re.escape(f)}"', section))
    assert not missing, f"docs/formats.md does not describe {missing}"
