"""``iobench plot``, ``iobench report`` and ``iobench compare``: read results, never re-run.

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
    from iobench.benchmarks.report.plots import write_plots
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


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_a", type=Path, metavar="RESULTS_A", help="the baseline run")
    parser.add_argument("results_b", type=Path, metavar="RESULTS_B", help="the run compared")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def cmd_compare(args: Any) -> int:
    from iobench.benchmarks.report.compare import compare_runs, headers, rows, summary_lines
    from iobench.benchmarks.results.loader import load_run

    run_a, run_b = load_run(args.results_a), load_run(args.results_b)
    comparison = compare_runs(run_a, run_b)
    table_rows = rows(comparison)
    if args.markdown:
        print("| " + " | ".join(headers()) + " |")
        print("|" + "---|" * len(headers()))
        for row in table_rows:
            print("| " + " | ".join(row) + " |")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="iobench compare: B/A per cell")
        for header in headers():
            table.add_column(header, overflow="fold")
        for row in table_rows:
            table.add_row(*row)
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 160)
        console.print(table)
    for line in summary_lines(comparison, run_a, run_b):
        print(line)
    return 0
