"""The ``iobench`` command: one ``cmd_<name>(args)`` per sub-command, dispatched in main()."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from iobench.common.errors import run_command

# name: (module, function adding its arguments, command function, help line).
# Modules are imported when the parser is built; they keep heavy imports
# (matplotlib, ...) inside their command functions so start-up stays fast.
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "serve": ("iobench.servers.harness", "add_serve_arguments", "cmd_serve",
              "run one server model"),
    "models": ("iobench.models", "add_arguments", "cmd_models", "list the server models"),
    "client": ("iobench.client", "add_arguments", "cmd_client",
               "interactive client: send lines, print the replies"),
    "load": ("iobench.loadgen.cli", "add_arguments", "cmd_load",
             "drive a server with load and measure latency"),
    "run": ("iobench.benchmarks.run.cli", "add_run_arguments", "cmd_run",
            "run the benchmark matrix"),
    "cluster": ("iobench.benchmarks.run.certs", "add_cluster_arguments", "cmd_cluster",
                "cluster tools: `cluster certs DIR --hosts A,B` makes a CA and TLS "
                "certificates for a trial"),
    "plot": ("iobench.benchmarks.report.cli", "add_plot_arguments", "cmd_plot",
             "draw a run's figures into RESULTS_DIR/plots"),
    "report": ("iobench.benchmarks.report.cli", "add_report_arguments", "cmd_report",
               "write a run's figures, REPORT.md and report.html"),
    "compare": ("iobench.benchmarks.report.cli", "add_compare_arguments", "cmd_compare",
                "compare two runs cell by cell"),
    "docs": ("iobench.benchmarks.report.cli", "add_docs_arguments", "cmd_docs",
             "write README's and docs/' tables and findings from a run folder"),
    "system": ("iobench.benchmarks.run.system_state", "add_system_arguments", "cmd_system",
               "show the machine's state that makes figures noisy, one verdict a line"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iobench",
        description="Benchmark I/O models: busy polling, polling with sleep, select, threads...",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, add_arguments, command, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        getattr(module, add_arguments)(command_parser)
        command_parser.set_defaults(func=getattr(module, command))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
