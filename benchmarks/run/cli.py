"""``iobench run``: the benchmark matrix, from a profile to a results folder.

Only the standard library is imported at the top: the CLI builds every sub-command's
parser at start-up, and the runner's imports are paid only by ``run``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iobench.common.errors import UsageError

if TYPE_CHECKING:
    from iobench.benchmarks.results.store import RunStore
    from iobench.benchmarks.run.certs import Credentials
    from iobench.benchmarks.run.cluster import Cluster
    from iobench.benchmarks.run.launcher import Placement
    from iobench.benchmarks.run.matrix import Profile

    # What a run is made of: its store, profile, models and CPU placement.
    Plan = tuple[RunStore, Profile, list[str], Placement]

DEFAULT_RESULTS_DIR = Path("results")
# Linux numbers CPUs below CONFIG_NR_CPUS, at most 8192.
MAX_CPU_NUMBER = 8191
# The host names of ``--cluster local`` when none are given.
LOCAL_SERVER_HOST = "server"
LOCAL_CLIENT_HOSTS = ("client",)


class ClusterUnavailable(UsageError):
    """The Dask scheduler or a named worker cannot be reached when the run starts."""

    exit_code = 1


def add_run_arguments(parser: Any) -> None:
    parser.add_argument("--profile", default="quick", metavar="quick|full|PATH",
                        help="the matrix: quick (default, under 4 minutes), full (about 25 "
                             "minutes on 2 cores, the closed loop in 3 rounds), "
                             "precision-probe (five fast models at one point, for "
                             "--precision) or a TOML profile file")
    parser.add_argument("--models", metavar="A,B,...",
                        help="run only these models (default: every available model)")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="repetitions of every cell (default: the profile's)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="the run folder itself, new or empty (default: results/<UTC "
                             "time>-<profile>/ under the current directory)")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue an interrupted run in DIR: run only its missing cells, "
                             "with its profile, models and CPU placement")
    parser.add_argument("--precision", metavar="PCT", default=None,
                        help="after the planned rounds, add rounds until every cell's "
                             "headline 95%% intervals are within +-PCT of their figures "
                             "(e.g. 5%%), or the budget is spent; then name the cells that "
                             "are not")
    parser.add_argument("--budget", metavar="TIME", default=None,
                        help="with --precision: the whole run's time limit, e.g. 20m, 600s "
                             "or 1h (default: the profile's precision_budget_s, else 20m)")
    parser.add_argument("--force", action="store_true",
                        help="with --resume: continue even on a machine that differs from the "
                             "run's (CPU model, CPU count, kernel); the difference is recorded. "
                             "With --out: write into a folder that is not empty")
    parser.add_argument("--server-cpus", metavar="LIST",
                        help="CPUs for the server and the neighbour job, e.g. 0 or 0-1 "
                             "(default: the first usable CPU)")
    parser.add_argument("--client-cpus", metavar="LIST",
                        help="CPUs for the load generator, e.g. 1 or 1,3 (default: the other "
                             "usable CPUs; the server's when there is only one)")
    parser.add_argument("--cluster", metavar="local|tls://HOST:8786",
                        help="run across hosts on a Dask cluster: the scheduler's address, or "
                             "'local' for a LocalCluster on this machine with credentials of "
                             "its own (pip install 'iobench[cluster]'); CPU options then apply "
                             "on every host. See docs/security.md")
    parser.add_argument("--security", type=Path, metavar="FILE",
                        help="with --cluster tls://: a TOML file naming the runner's ca, cert "
                             "and key (as `iobench cluster certs` writes it)")
    parser.add_argument("--tls-ca", metavar="FILE", help="with --cluster tls://: the CA "
                        "certificate every party's certificate is signed by")
    parser.add_argument("--tls-cert", metavar="FILE",
                        help="with --cluster tls://: the runner's certificate")
    parser.add_argument("--tls-key", metavar="FILE", help="with --cluster tls://: its key")
    parser.add_argument("--insecure", action="store_true",
                        help="allow --cluster tcp://: no encryption, no authentication; anyone "
                             "who reaches the scheduler runs code on every host")
    parser.add_argument("--server-host", metavar="H",
                        help=f"with --cluster: the Dask worker name (--name) of the server's host "
                             f"(default with --cluster local: {LOCAL_SERVER_HOST})")
    parser.add_argument("--client-hosts", metavar="H1[,H2...]",
                        help="with --cluster: the worker names of the load generator's hosts; "
                             "connections and open-loop rate are split evenly among them "
                             f"(default with --cluster local: {','.join(LOCAL_CLIENT_HOSTS)})")


def parse_cpu_list(text: str, option: str, *, local: bool = True) -> list[int]:
    """``"0,2-3"`` to ``[0, 2, 3]``, each a CPU this process may use (when ``local``).

    On a cluster the CPUs are on other hosts: each host checks them when it
    starts a process, and a cell fails with the reason if one is missing.
    Every number is checked against a bound (this machine's CPUs, or the
    kernel's largest CPU number) before a range is built, so ``0-100000000``
    is refused at once instead of filling memory first.
    """
    usable = os.sched_getaffinity(0)
    usable_text = ",".join(map(str, sorted(usable)))
    highest = max(usable) if local else MAX_CPU_NUMBER
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first_text, sep, last_text = part.strip().partition("-")
            first, last = int(first_text), int(last_text if sep else first_text)
            if not 0 <= first <= last <= highest:
                bound = f"usable CPUs are {usable_text}" if local else f"CPUs are 0-{highest}"
                raise UsageError(f"bad {option} {text!r}: {part.strip()!r} is not a range of "
                                 f"CPUs ({bound})")
            cpus.update(range(first, last + 1))
    except ValueError:
        raise UsageError(f"bad {option} {text!r}: expected CPU numbers like 0 or 0,2-3") from None
    if not cpus:
        raise UsageError(f"bad {option} {text!r}: no CPU")
    if local and not cpus <= usable:
        raise UsageError(f"bad {option} {text!r}: usable CPUs are {usable_text}")
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


def cluster_hosts(args: Any) -> tuple[str, list[str]] | None:
    """The server host and client hosts ``args`` name; None for a local run."""
    if args.cluster is None:
        if args.server_host or args.client_hosts:
            raise UsageError("--server-host and --client-hosts place a run on a cluster: "
                             "add --cluster tcp://HOST:8786 (or --cluster local)")
        return None
    local = args.cluster == "local"
    if not local and not args.cluster.startswith(("tcp://", "tls://")):
        raise UsageError(f"bad --cluster {args.cluster!r}: expected local or the scheduler's "
                         "address, e.g. tls://198.18.0.1:8786")
    server = args.server_host or (LOCAL_SERVER_HOST if local else None)
    clients = ([h.strip() for h in args.client_hosts.split(",")] if args.client_hosts
               else list(LOCAL_CLIENT_HOSTS) if local else None)
    if not server or not clients:
        raise UsageError("--cluster with a scheduler needs --server-host H and "
                         "--client-hosts H1[,H2...] (the workers' --name)")
    if any(not h for h in clients) or len(set(clients)) != len(clients):
        raise UsageError(f"bad --client-hosts {args.client_hosts!r}: names must be distinct "
                         "and non-empty")
    return server, clients


def cluster_credentials(args: Any) -> Credentials | None:
    """The runner's checked TLS credentials for ``--cluster tls://``; None for ``local``
    (it makes its own) and for ``tcp://`` with ``--insecure`` (after a warning line)."""
    import sys

    from iobench.benchmarks.run.certs import check_credentials, load_security_file

    given = [args.tls_ca, args.tls_cert, args.tls_key]
    tls_options = args.security is not None or any(given)
    if args.cluster is None or args.cluster == "local":
        if tls_options or args.insecure:
            raise UsageError("--security, --tls-* and --insecure apply to --cluster with a "
                             "scheduler's address; --cluster local makes its own credentials")
        return None
    if args.cluster.startswith("tcp://"):
        if tls_options:
            raise UsageError(f"TLS options given, but --cluster {args.cluster} is plain TCP: "
                             "use tls://")
        if not args.insecure:
            raise UsageError(f"--cluster {args.cluster} is plain TCP: unencrypted, and anyone "
                             "who reaches the scheduler runs code on every host; use tls:// "
                             "with --security FILE (see docs/security.md), or add --insecure")
        print(f"iobench run: warning: --insecure: {args.cluster} is neither encrypted nor "
              "authenticated; anyone who reaches it runs code on every host", file=sys.stderr,
              flush=True)
        return None
    if args.insecure:
        raise UsageError("--insecure applies to a tcp:// scheduler only")
    if args.security is not None:
        if any(given):
            raise UsageError("give --security FILE or --tls-ca/--tls-cert/--tls-key, not both")
        ca, cert, key = load_security_file(args.security)
    elif all(given):
        ca, cert, key = given
    else:
        raise UsageError(f"--cluster {args.cluster} needs the runner's credentials: "
                         "--security FILE, or --tls-ca, --tls-cert and --tls-key "
                         "(`iobench cluster certs DIR --hosts ...` makes them for a trial)")
    return check_credentials(ca, cert, key)


def open_cluster(args: Any) -> Cluster | None:
    """Connect to (or, for ``local``, start) the cluster ``args`` ask for."""
    hosts = cluster_hosts(args)
    credentials = cluster_credentials(args)
    if hosts is None:
        return None
    try:
        from iobench.benchmarks.run.cluster import Cluster, HostUnavailable
    except ImportError as exc:
        raise UsageError(f"--cluster needs Dask distributed: pip install 'iobench[cluster]' "
                         f"({exc})") from None
    server, clients = hosts
    try:
        return Cluster(args.cluster, [server, *clients], credentials)
    except HostUnavailable as exc:
        raise ClusterUnavailable(str(exc)) from None


def requested_placement(args: Any, cluster: Cluster | None) -> tuple[Placement, dict[str, Any]]:
    """The placement ``args`` ask for, and every host's environment on a cluster."""
    from iobench.benchmarks.run.launcher import Placement

    if cluster is None:
        return Placement(*default_placement(args.server_cpus, args.client_cpus)), {}
    from iobench.benchmarks.run.cluster import (
        HostUnavailable,
        cluster_placement,
        host_environments,
    )

    hosts = cluster_hosts(args)
    assert hosts is not None
    server, clients = hosts
    server_cpus = (parse_cpu_list(args.server_cpus, "--server-cpus", local=False)
                   if args.server_cpus else None)
    client_cpus = (parse_cpu_list(args.client_cpus, "--client-cpus", local=False)
                   if args.client_cpus else None)
    try:
        environments = host_environments(cluster, [server, *clients])
        return cluster_placement(cluster, server, clients, server_cpus, client_cpus,
                                 environments), environments
    except HostUnavailable as exc:
        raise ClusterUnavailable(str(exc)) from None


def plan_resume(args: Any, cluster: Cluster | None = None) -> Plan:
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
    models = profiles.select_models(profile, None, all_models(),
                                    available_models(references=True))
    profiles.check_size(profile, models)  # a file edited by hand is counted as a new profile
    placement = Placement(**store.document["environment"]["placement"])
    if (placement.server_host is None) != (cluster is None):
        asked = "on one host" if cluster is None else "on a cluster"
        raise UsageError(f"--resume: the run was measured with {placement.describe()}, not "
                         f"{asked}; figures from different placements are not comparable")
    if cluster is None:  # across hosts, the placement check above names every host
        check_same_machine(store, force=args.force)
    if cluster is not None or args.server_cpus or args.client_cpus:
        if cluster is None:
            requested = Placement(*default_placement(args.server_cpus, args.client_cpus))
        else:
            requested, _ = requested_placement(args, cluster)
            if not (args.server_cpus or args.client_cpus):
                requested = replace(requested, server_cpus=placement.server_cpus,
                                    client_cpus=placement.client_cpus)
        if requested != placement:
            raise UsageError(f"--resume keeps the run's placement ({placement.describe()}), "
                             f"not {requested.describe()}; figures from different placements "
                             "are not comparable")
    return store, profile, models, placement


def check_same_machine(store: RunStore, *, force: bool) -> None:
    """Refuse to resume on another machine, unless ``force``; then record that it was."""
    from iobench.benchmarks.results.store import utc_now
    from iobench.benchmarks.run.environment import machine_differences

    environment = store.document["environment"]
    differences = machine_differences(environment)
    if not differences:
        return
    if not force:
        raise UsageError(f"--resume: this is not the machine the run was measured on "
                         f"({'; '.join(differences)}); figures would not be comparable; "
                         "add --force to resume anyway")
    environment.setdefault("resumed_on_other_machine", []).append(
        {"at": utc_now(), "differences": differences})


def plan_new(args: Any, cluster: Cluster | None = None) -> Plan:
    """A new run folder for the profile, models and placement that ``args`` ask for."""
    from iobench.benchmarks.results.store import RunStore, run_id_for
    from iobench.benchmarks.run import matrix as profiles
    from iobench.benchmarks.run.environment import collect_environment
    from iobench.servers.registry import all_models, available_models

    if args.force and not args.out:
        raise UsageError("--force applies to --resume, or to --out DIR that is not empty")
    if args.repeat is not None and not 1 <= args.repeat <= profiles.MAX_REPEAT:
        raise UsageError(f"bad --repeat {args.repeat}: must be 1-{profiles.MAX_REPEAT}")
    profile = profiles.load_profile(args.profile)
    requested_models = [n.strip() for n in args.models.split(",")] if args.models else None
    # Reference models too: a matrix runs them only in their own scenario.
    models = profiles.select_models(profile, requested_models, all_models(),
                                    available_models(references=True))
    if args.repeat:
        profile.spec["repeat"] = args.repeat
    profiles.check_size(profile, models)
    if profile.spec.get("seed") is None:
        # The rounds' order is drawn once and recorded, so --resume keeps it.
        import secrets

        profile.spec["seed"] = secrets.randbelow(profiles.SEED_LIMIT)
    # The stored matrix names the models, so --resume runs the same ones.
    profile.spec["models"] = models
    # Expanded once before the run folder is made: a profile that gives two
    # cells one key is refused without leaving a folder behind.
    profiles.expand(profile, models)
    placement, hosts = requested_placement(args, cluster)
    run_id = run_id_for(profile.name)
    store = RunStore.create(args.out or DEFAULT_RESULTS_DIR / run_id, run_id=run_id,
                            profile=profile.name,
                            environment=collect_environment(placement.as_dict(),
                                                            hosts if cluster else None),
                            matrix=profile.spec, force=args.force)
    return store, profile, models, placement


def cmd_run(args: Any) -> int:
    cluster = open_cluster(args)
    try:
        return run_planned(args, cluster)
    finally:
        if cluster is not None:
            cluster.close()


def run_planned(args: Any, cluster: Cluster | None) -> int:
    """Plan the run (new or resumed), run its cells, and write its report."""
    import sys

    from iobench.benchmarks.run import console, rounds
    from iobench.benchmarks.run import matrix as profiles
    from iobench.benchmarks.run.launcher import Launcher, LocalLauncher
    from iobench.benchmarks.run.runner import Runner, Settings
    from iobench.common.processes import pinned, raise_fd_limit

    check_precision_options(args)
    if args.resume:
        store, profile, models, placement = plan_resume(args, cluster)
    else:
        store, profile, models, placement = plan_new(args, cluster)
    raise_fd_limit()
    if cluster is None:
        record_system_state(store, placement.server_cpus + placement.client_cpus,
                            resumed=bool(args.resume))
    target, budget_s, metrics = precision_request(args, profile)
    cells = rounds.interleave(rounds.with_rounds(profile, profiles.expand(profile, models)),
                              profile.spec.get("seed") or 0)
    todo = [c for c in cells if c.ident not in store.done()]
    loadgen = profile.spec["loadgen"]
    settings = Settings(loadgen_workers=loadgen["workers"], loadgen_timeout_s=loadgen["timeout_s"],
                        cell_timeout_s=profile.spec["cell_timeout_s"])
    shared = " (server and client share it)" if placement.server_cpus == placement.client_cpus \
        and cluster is None else ""
    print(f"iobench run {store.document['run_id']}: {len(todo)} of {len(cells)} cells, "
          f"{len(models)} models, {placement.describe()}{shared} -> {store.run_dir}",
          file=sys.stderr, flush=True)
    progress = console.make_progress(todo)
    launcher: Launcher
    if cluster is not None:
        from iobench.benchmarks.run.cluster import DaskLauncher

        launcher = DaskLauncher(cluster, placement)
    else:
        launcher = LocalLauncher(placement)
    runner = Runner(launcher, store, settings, progress)
    loop = None
    planned: Any = todo
    extra_rounds = 0
    if target is not None:
        from iobench.benchmarks.run.precision import ROUNDS_PER_SERVER, PrecisionLoop
        from iobench.benchmarks.run.runner import estimated_seconds

        # The rounds it adds are measured in place too: on the servers and load
        # generators of the planned rounds, then on fresh ones every few rounds.
        loop = PrecisionLoop(todo, lambda: store.cells, target, budget_s, metrics,
                             profile.spec.get("seed") or 0, estimated_seconds, matrix=cells,
                             settled=runner.release)
        planned, extra_rounds = loop, ROUNDS_PER_SERVER
    try:
        if cluster is not None:
            completed = runner.run(planned, todo, extra_rounds=extra_rounds)
        else:
            # Keep the runner (its sampling thread, its signals) off the server's CPUs.
            with pinned(placement.client_cpus):
                completed = runner.run(planned, todo, extra_rounds=extra_rounds)
    finally:
        progress.close()
        launcher.close()
        if loop is not None:
            store.document["precision"] = loop.summary()
            store.write()
    if loop is not None:
        report_precision(loop)
    console.print_summary(store.document['run_id'], store.cells)
    write_report(store.run_dir)
    if not completed:
        print(f"iobench: interrupted; {len(store.cells)} cells kept in {store.run_dir}; "
              f"continue with: iobench run --resume {store.run_dir}", file=sys.stderr)
        return 130
    print(f"results: {store.run_dir / 'results.json'}")
    return 0


def check_precision_options(args: Any) -> None:
    """--precision and --budget checked before a run folder is made (exit 2 if wrong)."""
    from iobench.benchmarks.run import precision

    if args.precision is None and args.budget is not None:
        raise UsageError("--budget limits the rounds --precision adds: add --precision PCT")
    if args.precision is not None:
        precision.parse_precision(args.precision)
    if args.budget is not None:
        precision.parse_budget(args.budget)


def precision_request(args: Any, profile: Profile) -> tuple[float | None, float, tuple[str, ...]]:
    """--precision's target, the budget in seconds and the metrics it narrows."""
    from iobench.benchmarks.run import precision

    if args.precision is None:
        if args.budget is not None:
            raise UsageError("--budget limits the rounds --precision adds: add --precision PCT")
        return None, 0.0, ()
    budget = (precision.parse_budget(args.budget) if args.budget
              else float(profile.spec.get("precision_budget_s") or precision.DEFAULT_BUDGET_S))
    return (precision.parse_precision(args.precision), budget,
            precision.check_metrics(list(profile.spec.get("precision_metrics") or [])))


def report_precision(loop: Any) -> None:
    """One line on what --precision did, and one per cell that did not get there."""
    import sys

    target = f"±{loop.target:.0%}" if loop.target >= 0.01 else f"±{loop.target:.1%}"
    if not loop.unmet:
        print(f"precision: every cell's intervals within {target} after {loop.rounds_added} "
              "added round(s)", file=sys.stderr)
        return
    print(f"precision: {len(loop.unmet)} cell(s) not within {target} after "
          f"{loop.rounds_added} added round(s) (stopped: {loop.stopped_by}):", file=sys.stderr)
    for key, reasons in sorted(loop.unmet.items()):
        print(f"  {key}: {'; '.join(reasons)}", file=sys.stderr)


def record_system_state(store: RunStore, cpus: list[int], *, resumed: bool) -> None:
    """One warning line per noisy state of the machine; every state in the environment.

    A resumed run keeps the states its first part saw and adds the new ones
    under ``system_on_resume``.
    """
    import sys

    from iobench.benchmarks.run import system_state

    states = system_state.collect(sorted(set(cpus)), system_state.RUN_SAMPLE_S)
    for state in system_state.noisy(states):
        print(f"warning: {state.name}: {state.value}"
              + (f" ({state.why})" if state.why else ""), file=sys.stderr)
    recorded = [s.to_json() for s in states]
    environment = store.document["environment"]
    if resumed:
        environment.setdefault("system_on_resume", []).append(recorded)
    else:
        environment["system"] = recorded
    store.write()


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
