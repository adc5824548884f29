"""Figures drawn from synthetic results: every file, readable labels, failed and missing data."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.benchmarks.report.plots import FIGURES, write_plots
from iobench.benchmarks.report.presentation import EXTRA_COLOURS, model_colour, registered_models
from iobench.benchmarks.results.loader import load_run
from tests.benchmarks.results_factory import make_results, write_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEMS = [stem for stem, _, _ in FIGURES]


def fail_cell(model: str, scenario: str, connections: int) -> object:
    def apply(cell: dict) -> None:
        if (cell["model"], cell["scenario"], cell["connections"]) == (model, scenario,
                                                                      connections):
            cell.update(status="failed", reason="server exited with code -9", histogram=None)
    return apply


@pytest.fixture(scope="module")
def plotted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    data = make_results(tweak=fail_cell("threads", "closed", 128))  # type: ignore[arg-type]
    run_dir = write_run(tmp_path_factory.mktemp("run"), data)
    return run_dir, write_plots(load_run(run_dir))


@pytest.mark.parametrize("stem", STEMS)
def test_every_figure_is_written_as_png_and_svg(plotted: tuple[Path, object],
                                                stem: str) -> None:
    run_dir, _ = plotted
    png = run_dir / "plots" / f"{stem}.png"
    svg = run_dir / "plots" / f"{stem}.svg"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert png.stat().st_size > 15_000, "a figure with lines, labels and a legend"
    text = svg.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "20261128T150000Z-synthetic1" in text, "footnote with the run id"
    assert "Synthetic CPU" in text, "footnote with the machine"


@pytest.mark.parametrize(("stem", "labels"), [
    ("throughput_vs_connections", ["throughput (requests/s)", "connections", "select"]),
    ("latency_spectrum", ["latency (us)", "99.9%", "poll-sleep @ 500 req/s"]),
    ("latency_vs_rate", ["offered rate (requests/s)", "p99 latency (us)"]),
    ("cpu_vs_rate", ["server CPU (% of one core)", "CPU per request (us)"]),
    ("idle_cpu", ["100 idle connections", "busy-poll"]),
    ("poll_sleep_tradeoff", ["sleep interval (us)", "select (reference)",
                             "poll-sleep (interval swept)"]),
    ("memory_threads_vs_connections", ["peak RSS (MiB)", "peak threads"]),
])
def test_figures_carry_units_and_legends(plotted: tuple[Path, object], stem: str,
                                         labels: list[str]) -> None:
    run_dir, _ = plotted
    text = (run_dir / "plots" / f"{stem}.svg").read_text(encoding="utf-8")
    for label in labels:
        assert label.replace("&", "&amp;") in text, f"{stem} lacks {label!r}"


def test_failed_cell_is_shown_as_failed(plotted: tuple[Path, object]) -> None:
    run_dir, _ = plotted
    assert "failed" in (run_dir / "plots" / "throughput_vs_connections.svg").read_text()
    assert "failed" not in (run_dir / "plots" / "latency_vs_rate.svg").read_text()


def test_missing_scenarios_skip_their_figures_with_a_note(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, make_results(repetitions=1, scenarios=("closed",)))
    outcome = write_plots(load_run(run_dir))
    assert set(outcome.figures) == {"throughput_vs_connections",
                                    "memory_threads_vs_connections"}
    assert any(note.startswith("latency_spectrum: skipped") and "'open'" in note
               for note in outcome.notes)
    assert len(outcome.notes) == len(FIGURES) - 2


def test_a_model_has_one_colour_and_models_differ() -> None:
    names = registered_models()
    colours = [model_colour(name) for name in names]
    assert len(set(colours)) == len(colours)
    assert model_colour("select") == model_colour("select")
    unknown = model_colour("not-a-registered-model")
    assert unknown in EXTRA_COLOURS and unknown == model_colour("not-a-registered-model")
