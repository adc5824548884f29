"""``iobench load`` / ``python -m iobench.loadgen``: options, the run, the summary and the JSON."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from iobench.common.errors import UsageError
from iobench.common.processes import interrupts_raise
from iobench.loadgen.params import ARRIVALS, EXPECTS, MODES, LoadParams
from iobench.loadgen.plan import WorkerResult
from iobench.loadgen.report import LoadReport
from iobench.loadgen.runner import WorkerFailed, build_result, run, run_rounds
from iobench.loadgen.summary import format_summary

STDOUT = "-"


class TargetUnreachable(UsageError):
    """No connection to the target could be made (refused, unreachable, timed out)."""

    exit_code = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = LoadParams(target="")
    parser.add_argument("--target", required=True, metavar="HOST:PORT",
                        help="server address, e.g. 127.0.0.1:8000 or [::1]:8000")
    parser.add_argument("--connections", "-c", type=int, default=defaults.connections,
                        metavar="C", help="connections, all opened before measuring "
                        f"(default {defaults.connections})")
    parser.add_argument("--duration", "-d", type=float, default=defaults.duration_s, metavar="S",
                        help=f"measured seconds (default {defaults.duration_s:g})")
    parser.add_argument("--warmup", type=float, default=defaults.warmup_s, metavar="S",
                        help=f"seconds of load before measuring, discarded "
                        f"(default {defaults.warmup_s:g})")
    parser.add_argument("--idle", type=int, default=defaults.idle, metavar="N",
                        help="extra connections that send nothing, opened before measuring "
                        "and checked still open at the end; split among workers "
                        f"(default {defaults.idle})")
    parser.add_argument("--requests-per-connection", type=int, default=None, metavar="K",
                        help="churn: close each connection after K requests and open another "
                        "at once (abortively, so no TIME_WAIT is left; from 127.0.0.128-254 "
                        "against a loopback server); default: connections stay open")
    parser.add_argument("--size", type=int, default=defaults.size_bytes, metavar="B",
                        help=f"message size in bytes (default {defaults.size_bytes})")
    parser.add_argument("--mode", choices=MODES, default=defaults.mode,
                        help="closed: send, wait for the reply, send again (peak throughput); "
                        "open: send at --rate whatever the replies do (default closed)")
    parser.add_argument("--rate", type=float, default=None, metavar="R",
                        help="open loop: total requests per second over all connections")
    parser.add_argument("--arrival", choices=ARRIVALS, default=defaults.arrival,
                        help="open loop: evenly spaced or Poisson arrivals (default uniform)")
    parser.add_argument("--workers", type=int, default=defaults.workers, metavar="K",
                        help="worker processes; connections and rate are split among them "
                        f"(default {defaults.workers})")
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s, metavar="S",
                        help=f"per-request (and connect) time-out in seconds "
                        f"(default {defaults.timeout_s:g})")
    parser.add_argument("--expect", choices=EXPECTS, default=defaults.expect,
                        help="upper: the iobench protocol (uppercase echo); echo: a plain "
                        "echo server (default upper)")
    parser.add_argument("--allow-errors", action="store_true",
                        help="exit 0 even when requests failed (they are still counted)")
    parser.add_argument("--json", nargs="?", const=STDOUT, default=None, metavar="PATH",
                        help="write the result as JSON to PATH (or to stdout instead of "
                        "the summary when PATH is left out)")
    parser.add_argument("--schedule", default=None, metavar="PATH",
                        help="write the measured window's start and end (CLOCK_MONOTONIC "
                        "seconds) as JSON to PATH once every connection is up, before it "
                        "opens, for a caller that acts inside it")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="measure N windows on the same connections, each once a line "
                        "arrives on stdin (EOF ends the run); round I's report goes to "
                        "PATH.I of --json, and its window to PATH.I of --schedule; "
                        "PATH.ready of --json is written once the connections are up "
                        "(for a caller that measures other servers between the rounds)")


def params_from_args(args: Any) -> LoadParams:
    return LoadParams(target=args.target, mode=args.mode, connections=args.connections,
                      duration_s=args.duration, warmup_s=args.warmup, size_bytes=args.size,
                      rate_rps=args.rate, arrival=args.arrival, workers=args.workers,
                      timeout_s=args.timeout, expect=args.expect,
                      idle=args.idle,
                      requests_per_connection=args.requests_per_connection).validate()


def write_json(result: dict[str, Any], path: str) -> None:
    """Write atomically: a reader never sees half a file."""
    text = json.dumps(result, indent=2) + "\n"
    if path == STDOUT:
        sys.stdout.write(text)
        return
    target = Path(path)
    try:
        with tempfile.NamedTemporaryFile("w", dir=target.parent or ".", prefix=target.name,
                                         suffix=".tmp", delete=False) as handle:
            handle.write(text)
        os.replace(handle.name, target)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_window(path: str, measure_ns: int, end_ns: int) -> None:
    """``--schedule``: the measured window, before it opens, in seconds."""
    write_json({"window_monotonic_s": [measure_ns / 1e9, end_ns / 1e9]}, path)


def failed_result(params: LoadParams, reason: str) -> LoadReport:
    """The report of a run that broke down before it could measure (a worker crashed)."""
    empty = [WorkerResult(worker_index=index) for index in range(params.workers)]
    result = build_result(params, empty)
    result.failure = reason
    return result




def cmd_rounds(args: Any, params: LoadParams) -> int:
    """``--rounds N``: the windows the caller starts one by one (see ``run_rounds``)."""
    if args.rounds < 1:
        raise UsageError(f"--rounds must be at least 1, got {args.rounds}")
    if args.json in (None, STDOUT):
        raise UsageError("--rounds needs --json PATH: each round's report goes to PATH.I")

    def ready(result: WorkerResult) -> None:
        write_json({"connected": result.connected, "starved": result.starved},
                   f"{args.json}.ready")

    def go(index: int) -> bool:
        return bool(sys.stdin.readline())

    def announce(index: int, measure_ns: int, end_ns: int) -> None:
        if args.schedule:
            write_window(f"{args.schedule}.{index}", measure_ns, end_ns)

    def finished(index: int, report: LoadReport) -> None:
        write_json(report.to_json(), f"{args.json}.{index}")

    with interrupts_raise((signal.SIGTERM,)):
        run_rounds(params, args.rounds, ready=ready, go=go, announce=announce,
                   finished=finished, allow_errors=args.allow_errors)
    return 0


def cmd_load(args: Any) -> int:
    params = params_from_args(args)
    for path in (args.json, args.schedule):
        if path not in (None, STDOUT) and not Path(path).parent.is_dir():
            raise UsageError(f"cannot write {path}: no directory {str(Path(path).parent)!r}")

    def announce(measure_ns: int, end_ns: int) -> None:
        write_window(args.schedule, measure_ns, end_ns)

    if args.rounds != 1:
        return cmd_rounds(args, params)
    try:
        with interrupts_raise((signal.SIGTERM,)):
            result = run(params, allow_errors=args.allow_errors,
                         announce=announce if args.schedule else None)
    except WorkerFailed as exc:
        # The caller still gets its JSON: nothing measured, ok false, and why.
        if args.json is not None:
            write_json(failed_result(params, str(exc)).to_json(), args.json)
        print(f"load generator failed: {exc}", file=sys.stderr)
        return 1
    if args.json is not None:
        write_json(result.to_json(), args.json)
    if result.client.connected == 0:
        raise TargetUnreachable(f"cannot connect to {params.target}: {result.connect_error}")
    if args.json != STDOUT:
        print(format_summary(result.to_json()))
    if result.failure:
        print(f"load generator failed: {result.failure}", file=sys.stderr)
    return 0 if result.ok else 1
