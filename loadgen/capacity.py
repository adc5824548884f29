"""``python -m iobench.loadgen.capacity``: how fast is the load generator itself?

Measures the client against a server that costs almost nothing: the native C
uppercase-echo server in ``native_echo.c``, built into a temporary directory.
The server is pinned to one CPU and the load generator to another, as the
benchmark runner places them. Two checks, each printed with its figures:

- closed loop, one worker, 16 connections, 64 B: at least 100,000 requests/s;
- open loop, two workers, 20,000 requests/s: no ``behind_schedule``.

Each check runs ``--repeat`` times and the best run counts, since other load
on a shared machine can only make a run slower. The client's CPU time per
request is printed too: it is the client's own ceiling whatever the machine did.

Nothing is left running: the server is stopped by its process group.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from iobench.common.errors import UsageError, run_command
from iobench.common.processes import pinned, stop_group

NATIVE_SOURCE = Path(__file__).with_name("native_echo.c")
CLOSED_TARGET_RPS = 100_000.0
OPEN_RATE_RPS = 20_000.0
READY_TIMEOUT_S = 10.0


def build_native(source: Path, directory: Path) -> Path:
    """Compile the native server with the system C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise UsageError("no C compiler (cc) found: the native echo server cannot be built")
    binary = directory / "native-echo"
    subprocess.run([compiler, "-O2", "-Wall", "-o", str(binary), str(source)], check=True)
    return binary


def placement() -> tuple[set[int] | None, set[int] | None]:
    """Server on the first allowed CPU, load generator on the second (None: unpinned)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("only one CPU available: server and load generator are not pinned apart",
              file=sys.stderr)
        return None, None
    return {cpus[0]}, {cpus[1]}


@contextmanager
def native_server(binary: Path, cpus: set[int] | None) -> Iterator[str]:
    """Run the native server in its own process group; yield its HOST:PORT."""
    with pinned(cpus):
        process = subprocess.Popen([str(binary), "0", "127.0.0.1"], stdout=subprocess.PIPE,
                                   text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()  # "listening HOST PORT PID"
        if len(line) != 4 or line[0] != "listening":
            raise UsageError(f"the native server did not start: {' '.join(line)!r}")
        yield f"{line[1]}:{line[2]}"
    finally:
        stop_group(process)
        if process.stdout:
            process.stdout.close()


def run_load(arguments: Sequence[str], cpus: set[int] | None, directory: Path) -> dict[str, Any]:
    """``python -m iobench.loadgen ARGS --json`` as the runner calls it; return its JSON."""
    path = directory / "load.json"
    command = [sys.executable, "-m", "iobench.loadgen", *arguments, "--json", str(path)]
    with pinned(cpus):
        completed = subprocess.run(command, stdout=subprocess.DEVNULL, timeout=300)
    if not path.exists():
        raise UsageError(f"the load generator wrote no JSON (exit {completed.returncode})")
    return json.loads(path.read_text())


def describe(title: str, result: dict[str, Any]) -> str:
    latency = result["latency"]
    client = result["client"]
    cpu = ", ".join(f"{value:.0f}%" for value in client["cpu_percent"])
    # CPU time per request tells the client's ceiling even when a busy machine
    # (not the client) limited this run: about 1e6 / cpu_us_per_request req/s.
    cpu_s = sum(client["cpu_percent"]) / 100 * result["measured_s"]
    cpu_us_per_request = 1e6 * cpu_s / result["requests"] if result["requests"] else 0.0
    return (f"{title}\n  throughput {result['throughput_rps']:.0f} req/s"
            f" (target {client['target_rate_rps'] or '-'}, sent {client['achieved_rate_rps']:.0f})"
            f"\n  latency p50 {latency['p50_us']} us, p99 {latency['p99_us']} us,"
            f" p99.9 {latency['p99_9_us']} us, max {latency['max_us']} us"
            f"\n  client CPU {cpu} ({cpu_us_per_request:.1f} us per request),"
            f" saturated {result['client_saturated']},"
            f" behind schedule {result['behind_schedule']},"
            f" largest schedule lag {client['max_schedule_lag_us']:.0f} us,"
            f" errors {result['errors']['total']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=5.0, metavar="S",
                        help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, metavar="S",
                        help="warm-up seconds per run (default 1)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="runs of each check; the best counts (default 3)")
    parser.add_argument("--source", type=Path, default=NATIVE_SOURCE,
                        help="C source of the native echo server")


def cmd_capacity(args: Any) -> int:
    if not args.source.is_file():
        raise UsageError(f"no such file: {args.source}")
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, not {args.repeat}")
    server_cpus, client_cpus = placement()
    timing = ["--duration", str(args.duration), "--warmup", str(args.warmup)]
    closed_runs: list[dict[str, Any]] = []
    open_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="iobench-capacity-") as temp:
        directory = Path(temp)
        binary = build_native(args.source, directory)
        print(f"server CPUs {sorted(server_cpus or [])}, load generator CPUs "
              f"{sorted(client_cpus or [])}, load average {os.getloadavg()[0]:.2f}")
        with native_server(binary, server_cpus) as target:
            for _ in range(args.repeat):
                closed_runs.append(run_load(
                    ["--target", target, "--connections", "16", "--size", "64", *timing],
                    client_cpus, directory))
                open_runs.append(run_load(
                    ["--target", target, "--connections", "16", "--size", "64", "--workers", "2",
                     "--mode", "open", "--rate", str(OPEN_RATE_RPS), *timing],
                    client_cpus, directory))
    # A capacity is a ceiling: other load on the machine only ever lowers a run,
    # so the best run counts. Every run is printed.
    closed = max(closed_runs, key=lambda result: result["throughput_rps"])
    closed_ok = closed["ok"] and closed["throughput_rps"] >= CLOSED_TARGET_RPS
    open_ok = any(result["ok"] and not result["behind_schedule"] for result in open_runs)
    for index, result in enumerate(closed_runs, 1):
        print(describe(f"closed loop, 1 worker, 16 connections, 64 B, run {index}", result))
    for index, result in enumerate(open_runs, 1):
        print(describe(f"open loop, 2 workers, {OPEN_RATE_RPS:.0f} req/s, run {index}", result))
    print(f"closed loop: {'PASS' if closed_ok else 'FAIL'}, best "
          f"{closed['throughput_rps']:.0f} req/s (needs >= {CLOSED_TARGET_RPS:.0f})")
    print(f"open loop: {'PASS' if open_ok else 'FAIL'} (needs a run without behind_schedule)")
    return 0 if closed_ok and open_ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iobench.loadgen.capacity",
                                     description="Measure the load generator's own capacity "
                                     "against a native C echo server.")
    add_arguments(parser)
    return run_command(cmd_capacity, parser.parse_args(argv),
                       prog="python -m iobench.loadgen.capacity")


if __name__ == "__main__":
    sys.exit(main())
