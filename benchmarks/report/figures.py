"""The figures of a run: every scenario's, drawn from its results.json alone and saved.

Each scenario declares its figures (``iobench.benchmarks.report.scenarios``);
:func:`write_plots` draws them all in one process (importing matplotlib once
is most of the cost) with the toolkit of ``iobench.benchmarks.report.plots``
and saves PNG + SVG. A figure whose scenario the run lacks is skipped with a
note (a custom profile without ``open``, say).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from iobench.benchmarks.report.plots import PLOTS_DIR, PlotOutcome, figure_legend, save
from iobench.benchmarks.report.scenario import FigureSpec
from iobench.benchmarks.report.scenarios import REPORT_SCENARIOS
from iobench.benchmarks.results.loader import Run
from iobench.common.files import make_dir

# Every figure with the scenario it needs, in the scenarios' order.
CATALOGUE: tuple[tuple[FigureSpec, str], ...] = tuple(
    (figure, scenario.name) for scenario in REPORT_SCENARIOS.values()
    for figure in scenario.figures)
# File stem, builder and scenario, as the tests and tools iterate them.
FIGURES: tuple[tuple[str, Callable[..., Any], str], ...] = tuple(
    (figure.stem, figure.draw, scenario) for figure, scenario in CATALOGUE)


def write_plots(run: Run, directory: Path | None = None,
                spectrum_rate: float | None = None) -> PlotOutcome:
    """Draw every figure the run has data for into ``run/plots`` (or ``directory``)."""
    import matplotlib

    matplotlib.use("Agg")
    target = directory or run.directory / PLOTS_DIR
    make_dir(target)
    outcome = PlotOutcome()
    for figure, scenario in CATALOGUE:
        fig = figure.draw(run, spectrum_rate) if figure.takes_rate else figure.draw(run)
        if fig is None:
            outcome.notes.append(f"{figure.stem}: skipped, the run has no '{scenario}' "
                                 "scenario data")
            continue
        figure_legend(fig, fig.axes)
        paths = save(fig, target, figure.stem)
        outcome.figures[figure.stem] = paths
        outcome.paths += paths
    return outcome
