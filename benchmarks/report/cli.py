"""``iobench plot``, ``report``, ``compare`` and ``docs``: read results, never re-run.

Heavy imports (matplotlib, rich) stay inside the command functions, so
building the ``iobench`` parser stays fast for every other sub-command.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                        help="a run folder holding results.json")
    parser.add_argument("--spectrum-rate", type=positive_rate, default=None, metavar="RPS",
                        help="draw the latency spectrum at the open-loop rate nearest RPS "
                             "(default: each model's middle load level)")


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_dir(parser)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_dir(parser)


def cmd_plot(args: Any) -> int:
    from iobench.benchmarks.report.figures import write_plots
    from iobench.benchmarks.results.loader import load_run

    outcome = write_plots(load_run(args.results_dir), spectrum_rate=args.spectrum_rate)
    for path in outcome.paths:
        print(path)
    for note in outcome.notes:
        print(f"note: {note}")
    return 0


def cmd_report(args: Any) -> int:
    from iobench.benchmarks.report.document import write_all

    for path in write_all(args.results_dir, spectrum_rate=args.spectrum_rate):
        print(path)
    return 0


def non_negative_percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_a", type=Path, metavar="RESULTS_A", help="the baseline run")
    parser.add_argument("results_b", type=Path, metavar="RESULTS_B", help="the run compared")
    parser.add_argument("--markdown", action="store_true",
                        help="print a Markdown table with A -> B in full, for documents")
    parser.add_argument("--fail-above", type=non_negative_percent, default=None, metavar="PCT",
                        help="exit 1 when any model's figure moves by more than PCT%% and "
                             "the two runs' 95%% intervals are apart (a CI gate); a move "
                             "inside the noise is not significant and passes")
    parser.add_argument("--overlap", action="store_true",
                        help="instead of the table, print for throughput, p50 and CPU per "
                             "request the share of ok cells whose 95%% intervals overlap in "
                             "both runs (how far B reproduces A)")
    parser.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                        help="also draw B/A per cell with its range (PNG, or SVG by suffix)")
    parser.add_argument("--placement-figure", type=Path, default=None, metavar="OUT.png",
                        help="instead of the table, draw one cell's latency by percentile in "
                             "both runs, each labelled with where it ran: the one view of two "
                             "placements side by side (e.g. one host and across hosts)")
    parser.add_argument("--cell", default=None, metavar="KEY",
                        help="with --placement-figure: the cell key to draw (default: the "
                             "first with latencies in both runs)")


def cmd_compare(args: Any) -> int:
    from iobench.benchmarks.report.compare import (
        LEGEND,
        TERMINAL_COLUMNS,
        compare_runs,
        gate_failures,
        headers,
        model_shifts,
        plot_comparison,
        rows,
        short_headers,
        short_rows,
        style,
        summary_lines,
        unjudged,
        wrap,
    )
    from iobench.benchmarks.results.loader import load_run
    from iobench.common.errors import UsageError

    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {args.plot}: the file name must end in .png or .svg")
    run_a, run_b = load_run(args.results_a), load_run(args.results_b)
    if args.placement_figure is not None:
        return draw_placements(run_a, run_b, args.placement_figure, args.cell)
    if run_a.placement != run_b.placement:
        from iobench.benchmarks.report.placement import describe

        raise UsageError(f"A and B were measured under different placements (A: "
                         f"{describe(run_a.placement)}; B: {describe(run_b.placement)}): "
                         "their figures are not comparable; --placement-figure OUT.png "
                         "draws one cell of each, labelled with where it ran")
    if args.overlap:
        from iobench.benchmarks.report.compare import overlaps

        for line in wrap([f"A = {run_a.run_id}, B = {run_b.run_id}: ok cells whose 95% "
                          "intervals overlap"] + [o.line() for o in overlaps(run_a, run_b)]):
            print(line)
        return 0
    comparison = compare_runs(run_a, run_b)
    if args.markdown:
        print("| " + " | ".join(headers()) + " |")
        print("|" + "---|" * len(headers()))
        for row in rows(comparison):
            print("| " + " | ".join(row) + " |")
    else:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(title="iobench compare: B/A per cell", box=box.SIMPLE_HEAD,
                      pad_edge=False)
        table.add_column(short_headers()[0], overflow="fold", ratio=1)
        for index, header in enumerate(short_headers()[1:]):
            table.add_column(header, justify="left" if index % 2 else "right", no_wrap=True)
        for row in short_rows(comparison):
            table.add_row(*row)
        console = Console()
        if not console.is_terminal or console.width > TERMINAL_COLUMNS:
            console.width = TERMINAL_COLUMNS
        console.print(table)
        for line in wrap([LEGEND]):
            print(line)
    for line in wrap(summary_lines(comparison, run_a, run_b)):
        print(line)
    if args.plot is not None:
        print(plot_comparison(comparison, run_a, run_b, args.plot))
    if args.fail_above is not None:
        shifts = model_shifts(comparison)
        failures = gate_failures(shifts, args.fail_above)
        unknown = unjudged(comparison, args.fail_above)
        drift = {shift.metric: shift.drift for shift in shifts}
        lines = ["the machine moved every cell by (median B/A): " + ", ".join(
            f"{style(metric).title} {value:.2f}x" for metric, value in drift.items())]
        lines += [f"FAIL: {len(failures)} model(s) moved beyond {args.fail_above:g}% beside "
                  f"the others (95% interval over their cells): " + "; ".join(failures)] \
            if failures else [f"ok: no model moved beyond {args.fail_above:g}% beside the others"]
        if unknown:
            lines.append(f"not judged, one repetition: {len(unknown)} move(s) beyond "
                         f"{args.fail_above:g}% without an interval: " + "; ".join(unknown))
        for line in wrap(lines):
            print(line)
        return 1 if failures else 0
    return 0


def draw_placements(run_a: Any, run_b: Any, path: Path, key: str | None) -> int:
    """``compare --placement-figure``: one cell under both runs' placements, as a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from iobench.benchmarks.report.placement import fig_cell_across_placements
    from iobench.common.errors import UsageError
    from iobench.common.files import make_dir, save_figure

    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--placement-figure {path}: the file name must end in .png or .svg")
    try:
        fig = fig_cell_across_placements(run_a, run_b, key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    save_figure(fig, make_dir(path.parent) / path.name)
    plt.close(fig)
    print(path)
    return 0


def add_docs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RUN_DIR",
                        help="the run folder the documentation quotes (results.json)")
    parser.add_argument("--root", type=Path, default=Path("."), metavar="DIR",
                        help="the checkout whose README.md and docs/ to write (default: .)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming the first differing line of each "
                             "file whose generated parts differ from the run")


def cmd_docs(args: Any) -> int:
    from iobench.benchmarks.report.docs import differences, write_docs
    from iobench.benchmarks.results.loader import load_run

    run = load_run(args.results_dir)
    if args.check:
        found = differences(run, args.root)
        for line in found:
            print(line)
        return 1 if found else 0
    for path in write_docs(run, args.root):
        print(path)
    return 0
