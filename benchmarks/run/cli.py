"""``iobench run``: the benchmark matrix, from a profile to a results folder.

Only the standard library is imported at the top: the CLI builds every sub-command's
parser at start-up, and the runner's imports are paid only by ``run``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iobench.common.errors import UsageError

if TYPE_CHECKING:
    from iobench.benchmarks.results.store import RunStore
    from iobench.benchmarks.run.launcher import Placement
    from iobench.benchmarks.run.matrix import Profile

    # What a run is made of: its store, profile, models and CPU placement.
    Plan = tuple[RunStore, Profile, list[str], Placement]

DEFAULT_RESULTS_DIR = Path("results")


def add_run_arguments(parser: Any) -> None:
    parser.add_argument("--profile", default="quick", metavar="quick|full|PATH",
                        help="the matrix: quick (default, under 3 minutes), full (under 30 "
                             "minutes, 3 repetitions) or a TOML profile file")
    parser.add_argument("--models", metavar="A,B,...",
                        help="run only these models (default: every available model)")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="repetitions of every cell (default: the profile's)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="the run folder itself (default: results/<UTC time>-<profile>/ "
                             "under the current directory)")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue an interrupted run in DIR: run only its missing cells, "
                             "with its profile, models and CPU placement")
    parser.add_argument("--server-cpus", metavar="LIST",
                        help="CPUs for the server and the neighbour job, e.g. 0 or 0-1 "
                             "(default: the first usable CPU)")
    parser.add_argument("--client-cpus", metavar="LIST",
                        help="CPUs for the load generator, e.g. 1 or 1,3 (default: the other "
                             "usable CPUs; the server's when there is only one)")


def parse_cpu_list(text: str, option: str) -> list[int]:
    """``"0,2-3"`` to ``[0, 2, 3]``, each a CPU this process may use."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first, sep, last = part.strip().partition("-")
            cpus.update(range(int(first), int(last if sep else first) + 1))
    except ValueError:
        raise UsageError(f"bad {option} {text!r}: expected CPU numbers like 0 or 0,2-3") from None
    usable = os.sched_getaffinity(0)
    if not cpus or not cpus <= usable:
        raise UsageError(f"bad {option} {text!r}: usable CPUs are "
                         f"{','.join(map(str, sorted(usable)))}")
    return sorted(cpus)


def default_placement(server_text: str | None, client_text: str | None) -> tuple[list[int],
                                                                                   list[int]]:
    """Disjoint server and client CPUs where the machine has two; one shared CPU otherwise."""
    usable = sorted(os.sched_getaffinity(0))
    server = parse_cpu_list(server_text, "--server-cpus") if server_text else usable[:1]
    if client_text:
        client = parse_cpu_list(client_text, "--client-cpus")
    else:
        client = [c for c in usable if c not in server] or server
    return server, client


def plan_resume(args: Any) -> Plan:
    """The store, profile, models and placement of the run in ``args.resume``."""
    from iobench.benchmarks.results.store import RunStore
    from iobench.benchmarks.run import matrix as profiles
    from iobench.benchmarks.run.launcher import Placement
    from iobench.servers.registry import all_models, available_models

    if args.out or args.models or args.repeat or args.profile != "quick":
        raise UsageError("--resume continues a run as it was planned; drop --profile, "
                         "--models, --repeat and --out")
    store = RunStore.open(args.resume)
    profile = profiles.Profile(store.document["profile"],
                               profiles.check_spec(store.document["matrix"],
                                                   str(args.resume / "results.json")))
    models = profiles.select_models(profile, None, all_models(), available_models())
    placement = Placement(**store.document["environment"]["placement"])
    if args.server_cpus or args.client_cpus:
        requested = Placement(*default_placement(args.server_cpus, args.client_cpus))
        if requested != placement:
            raise UsageError(f"--resume keeps the run's placement {placement.as_dict()}; "
                             "figures from different placements are not comparable")
    return store, profile, models, placement


def plan_new(args: Any) -> Plan:
    """A new run folder for the profile, models and placement that ``args`` ask for."""
    from iobench.benchmarks.results.store import RunStore, run_id_for
    from iobench.benchmarks.run import matrix as profiles
    from iobench.benchmarks.run.environment import collect_environment
    from iobench.benchmarks.run.launcher import Placement
    from iobench.servers.registry import all_models, available_models

    if args.repeat is not None and args.repeat < 1:
        raise UsageError(f"bad --repeat {args.repeat}: must be at least 1")
    profile = profiles.load_profile(args.profile)
    requested_models = [n.strip() for n in args.models.split(",")] if args.models else None
    models = profiles.select_models(profile, requested_models, all_models(), available_models())
    if args.repeat:
        profile.spec["repeat"] = args.repeat
    # The stored matrix names the models, so --resume runs the same ones.
    profile.spec["models"] = models
    placement = Placement(*default_placement(args.server_cpus, args.client_cpus))
    run_id = run_id_for(profile.name)
    store = RunStore.create(args.out or DEFAULT_RESULTS_DIR / run_id, run_id=run_id,
                            profile=profile.name,
                            environment=collect_environment(placement.as_dict()),
                            matrix=profile.spec)
    return store, profile, models, placement


def cmd_run(args: Any) -> int:
    import sys

    from iobench.benchmarks.run import console
    from iobench.benchmarks.run import matrix as profiles
    from iobench.benchmarks.run.launcher import LocalLauncher
    from iobench.benchmarks.run.runner import Runner, Settings
    from iobench.common.processes import pinned, raise_fd_limit

    store, profile, models, placement = plan_resume(args) if args.resume else plan_new(args)
    raise_fd_limit()
    cells = profiles.expand(profile, models)
    todo = [c for c in cells if c.ident not in store.done()]
    loadgen = profile.spec["loadgen"]
    settings = Settings(loadgen_workers=loadgen["workers"], loadgen_timeout_s=loadgen["timeout_s"],
                        cell_timeout_s=profile.spec["cell_timeout_s"])
    shared = " (server and client share it)" if placement.server_cpus == placement.client_cpus \
        else ""
    print(f"iobench run {store.document['run_id']}: {len(todo)} of {len(cells)} cells, "
          f"{len(models)} models, server CPUs {placement.server_cpus}, client CPUs "
          f"{placement.client_cpus}{shared} -> {store.run_dir}", file=sys.stderr, flush=True)
    progress = console.make_progress(todo)
    launcher = LocalLauncher(placement)
    try:
        # Keep the runner (its sampling thread, its signals) off the server's CPUs.
        with pinned(placement.client_cpus):
            completed = Runner(launcher, store, settings, progress).run(todo)
    finally:
        progress.close()
        launcher.close()
    console.print_summary(store.document['run_id'], store.cells)
    write_report(store.run_dir)
    if not completed:
        print(f"iobench: interrupted; {len(store.cells)} cells kept in {store.run_dir}; "
              f"continue with: iobench run --resume {store.run_dir}", file=sys.stderr)
        return 130
    print(f"results: {store.run_dir / 'results.json'}")
    return 0


def write_report(run_dir: Path) -> None:
    """Plots and report for the run, when that part of the package is installed."""
    import sys

    try:
        from iobench.benchmarks.report.document import write_all
    except ImportError:
        print("note: iobench.benchmarks.report.document is not available;"
              " no plots or report written",
              file=sys.stderr)
        return
    for path in write_all(run_dir):
        print(f"wrote {path}")
