"""Figures drawn from synthetic results: every file, readable labels, failed and missing data."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.benchmarks.report.figures import FIGURES, write_plots
from iobench.benchmarks.report.plots import (
    FAILED_COLOUR,
    REFERENCE_COLOUR,
    SMALL_MULTIPLES_ABOVE,
    figure_legend,
)
from iobench.benchmarks.report.presentation import (
    ARTICLE_MODELS,
    EXTRA_COLOURS,
    model_colour,
    model_style,
    registered_models,
)
from iobench.benchmarks.results.loader import load_run
from tests.benchmarks.results_factory import make_results, write_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEMS = [stem for stem, _, _ in FIGURES]
DRAW = {stem: draw for stem, draw, _ in FIGURES}


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
    ("memory_threads_vs_connections", ["PSS (MiB)", "peak threads"]),
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


def hue(colour: str) -> float:
    from matplotlib.colors import rgb_to_hsv, to_rgb

    return float(rgb_to_hsv(to_rgb(colour))[0])


def hue_distance(a: float, b: float) -> float:
    return min(abs(a - b), 1 - abs(a - b))


def test_each_model_has_its_own_colour_and_marker_in_its_familys_hue() -> None:
    names = registered_models()
    looks = {name: model_style(name) for name in names}
    assert len({(s.colour, s.marker) for s in looks.values()}) == len(names)
    by_family: dict[str, list[float]] = {}
    for look in looks.values():
        by_family.setdefault(look.family, []).append(hue(look.colour))
    centres = {family: sum(hues) / len(hues) for family, hues in by_family.items()}
    for name, look in looks.items():
        own = hue_distance(hue(look.colour), centres[look.family])
        for family, centre in centres.items():
            if family != look.family:
                assert own < hue_distance(hue(look.colour), centre), \
                    f"{name} ({look.colour}) reads as {family}, not {look.family}"
    assert {name for name, look in looks.items() if look.highlighted} == set(ARTICLE_MODELS)


@pytest.fixture(scope="module")
def thirteen_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = make_results(repetitions=2, models=registered_models())
    return write_run(tmp_path_factory.mktemp("thirteen"), data)


def series_colours(ax: object) -> set[str]:
    """Distinct colours of the lines drawn on an axes, grey reference and failures aside."""
    from matplotlib.colors import to_hex

    colours = {to_hex(line.get_color()) for line in ax.get_lines()}  # type: ignore[attr-defined]
    return colours - {to_hex(REFERENCE_COLOUR), to_hex(FAILED_COLOUR), "#888888", "#777777"}


@pytest.mark.parametrize(("stem", "builder", "scenario"), FIGURES)
def test_no_axis_holds_more_than_six_models_and_colours_never_change(
        thirteen_models: Path, stem: str, builder: object, scenario: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig = builder(load_run(thirteen_models))  # type: ignore[operator]
    assert fig is not None
    for ax in fig.axes:
        assert len(series_colours(ax)) <= SMALL_MULTIPLES_ABOVE, \
            f"{stem}: {ax.get_title()!r} draws {len(series_colours(ax))} models"
    figure_legend(fig, fig.axes)
    labelled = {}
    for legend in fig.legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            labelled[text.get_text()] = handle
    for name in registered_models():
        entry = next((h for label, h in labelled.items()
                      if label.split(" ")[0] == name and "grey" not in label), None)
        if entry is not None and hasattr(entry, "get_color"):
            from matplotlib.colors import to_hex

            assert to_hex(entry.get_color()) == to_hex(model_colour(name)), f"{stem}: {name}"


def test_thirteen_models_become_one_panel_per_family(thirteen_models: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig = DRAW["latency_vs_rate"](load_run(thirteen_models))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    for family in ("non-blocking", "I/O multiplexing", "blocking",
                   "signal-driven and asynchronous"):
        assert f"p50 · {family}" in titles and f"p99 · {family}" in titles


def test_bar_panels_name_their_own_models(tmp_path: Path) -> None:
    """One offered rate (the quick profile): each family panel's bars carry its models' names."""
    import matplotlib

    matplotlib.use("Agg")
    data = make_results(repetitions=1, models=registered_models(), open_rates=(500.0,),
                        scenarios=("open",))
    fig = DRAW["latency_vs_rate"](load_run(write_run(tmp_path, data)))
    for ax in fig.axes:
        names = {tick.get_text() for tick in ax.get_xticklabels()}
        family = ax.get_title().split(" · ")[1]
        expected = {m for m in registered_models()
                    if model_style(m).family in family.split(" and ")}
        assert names == expected, f"{ax.get_title()}: ticks {sorted(names)}"
