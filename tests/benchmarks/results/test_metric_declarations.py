"""A metric is declared once, on its field of the cell record, and everything reads it."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from iobench.benchmarks.report.compare import COMPARED_METRICS, short_headers
from iobench.benchmarks.report.presentation import format_value, style
from iobench.benchmarks.results.record import METRIC, METRIC_NAMES, METRICS, Metrics
from iobench.benchmarks.results.store import CSV_FIELDS

FORMATS = Path(__file__).resolve().parents[3] / "docs" / "formats.md"
# The unit a stored name ends with, and what a declaration may show it in.
SHOWN_UNITS = {"_us": {"us"}, "_rps": {"req/s"}, "_percent": {"% of a core", "%"},
               "_bytes": {"MiB", "KiB"}, "_per_s": {"per s", "ops/s"},
               "_per_request": {"per request", "us"}}


@pytest.mark.parametrize("field", fields(Metrics), ids=lambda f: f.name)
def test_every_metric_field_is_declared(field: object) -> None:
    assert METRIC in field.metadata, f"Metrics.{field.name} needs metric(...)"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_the_shown_unit_fits_the_stored_one(name: str) -> None:
    declared = METRICS[name]
    assert declared.title and declared.meaning
    suffix = next((s for s in SHOWN_UNITS if name.endswith(s)), None)
    if suffix is not None:
        assert declared.unit in SHOWN_UNITS[suffix], name


def test_tables_and_csv_read_the_declarations() -> None:
    assert style("pss_bytes") is METRICS["pss_bytes"]
    assert format_value("pss_bytes", 3 * 1024 * 1024) == "3.0"
    assert set(METRIC_NAMES) <= set(CSV_FIELDS)
    assert COMPARED_METRICS == ("throughput_rps", "p99_us", "cpu_us_per_request")
    assert "B CPU/req us" in short_headers()
    with pytest.raises(KeyError, match="not a declared metric"):
        style("throughput")


def test_formats_md_lists_exactly_the_declared_metrics() -> None:
    text = FORMATS.read_text()
    block = text.split('"metrics": {', 1)[1].split("},", 1)[0]
    documented = re.findall(r'"([a-z0-9_]+)"', block)
    assert sorted(documented) == sorted(METRIC_NAMES), \
        "docs/formats.md's metrics differ from record.Metrics"
