"""The Dask launcher on a LocalCluster: the code path of ``--cluster``, on every machine.

One cluster (a server host and two client hosts, each a worker process) is
shared by the module's tests: starting it takes seconds. Cells are short.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("distributed", reason="the cluster extra is not installed: "
                    "pip install 'iobench[cluster]'")

from hdrh.histogram import HdrHistogram

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.results.store import RunStore, read_results
from iobench.benchmarks.run import remote
from iobench.benchmarks.run.cluster import (
    Cluster,
    DaskLauncher,
    cluster_placement,
    host_environments,
)
from iobench.benchmarks.run.launcher import LocalLauncher, Placement
from iobench.benchmarks.run.matrix import Profile, check_spec, expand
from iobench.benchmarks.run.runner import Runner, Settings
from iobench.cli import main
from tests.benchmarks.run.runs_watched import alive, command_line, start_run, wait_for_processes

HOSTS = ["server", "client1", "client2"]
CPUS = sorted(os.sched_getaffinity(0))
# A tiny matrix with every kind of cell the launcher serves: idle connections,
# closed and open loop, and the neighbour job on the server's host.
SHAPE_SPEC = {
    "idle": {"connections": [0, 10], "duration_s": 0.5},
    "closed": {"connections": [4], "sizes_bytes": [64], "duration_s": 0.8, "warmup_s": 0.2},
    "open": {"rates_rps": [300.0], "connections": 4, "duration_s": 0.8, "warmup_s": 0.2},
    # The idle and load phases stop and resume the server in 50 ms slices: across
    # hosts each switch is a round trip, and on a busy machine too few whole slices
    # remain (a known limit); the neighbour job on the server's host is tested solo.
    "neighbour": {"phases": ["solo"], "duration_s": 0.6},
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster("local", HOSTS)
    try:
        yield started
    finally:
        started.close()


def placement_for(cluster: Cluster, clients: list[str]) -> Placement:
    return cluster_placement(cluster, "server", clients, None, None,
                             host_environments(cluster, ["server", *clients]))


def run_matrix(launcher: Any, spec: dict[str, Any], run_dir: Path,
               models: list[str]) -> dict[str, dict[str, Any]]:
    checked = check_spec(spec, "test")
    cells = expand(Profile("test", checked), models)
    store = RunStore.create(run_dir, run_id=run_dir.name, profile="test",
                            environment={"placement": launcher.placement.as_dict()},
                            matrix=checked)
    try:
        assert Runner(launcher, store, Settings()).run(cells)
    finally:
        launcher.close()
    return {cell["key"]: cell for cell in read_results(run_dir)["cells"]}


# Read from the client CPUs' per-CPU times, which a cluster run's runner does
# not read (the clients are on other hosts): null there, by design.
CLIENT_HOST_METRICS = frozenset({"steal_client_percent"})


def shape(cell: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree between a local and a cluster cell: fields, status, measured metrics.

    System call counts are left out: perf does not always get its counting
    window on a busy machine, on either side (the cluster's count is checked
    on its own below).
    """
    measured = frozenset(name for name, value in cell["metrics"].items()
                         if value is not None and name != "syscalls_per_request"
                         and name not in CLIENT_HOST_METRICS)
    return (frozenset(cell), cell["status"], measured, cell["histogram"] is not None)


def test_a_cluster_run_has_the_shape_of_a_local_run(cluster: Cluster, tmp_path: Path) -> None:
    placement = placement_for(cluster, ["client1"])
    remote_cells = run_matrix(DaskLauncher(cluster, placement), SHAPE_SPEC, tmp_path / "dask",
                              ["epoll"])
    local = Placement(placement.server_cpus, placement.client_cpus)
    local_cells = run_matrix(LocalLauncher(local), SHAPE_SPEC, tmp_path / "local", ["epoll"])
    assert remote_cells.keys() == local_cells.keys()
    failed = {k: c["reason"] for k, c in remote_cells.items() if c["status"] != "ok"}
    assert not failed
    for key, cell in remote_cells.items():
        across, local_shape = shape(cell), shape(local_cells[key])
        assert across == local_shape, (key, across[0] ^ local_shape[0],
                                       across[2] ^ local_shape[2], cell["syscalls"],
                                       local_cells[key]["syscalls"])
        assert cell["placement"]["server_host"] == "server"
        assert cell["placement"]["client_hosts"] == ["client1"]
        assert cell["cpu_accounting"] == local_cells[key]["cpu_accounting"], key
    closed = remote_cells["closed/epoll/c4/s64"]
    # Bytes verified: the load generator checks every reply and counts mismatches.
    assert closed["metrics"]["errors"] == 0 and closed["metrics"]["requests"] > 0
    assert closed["metrics"]["server_cpu_percent"] > 0
    # Counted on the server's host, or the reason why not.
    assert closed["metrics"]["syscalls_per_request"] or closed["syscalls"]["reason"]
    assert len(closed["samples"]["t_s"]) >= 3


def test_two_client_hosts_each_hold_half_of_the_open_loop_rate(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    spec = {"open": {"rates_rps": [400.0], "connections": 4, "duration_s": 1.5,
                     "warmup_s": 0.3}}
    launcher = DaskLauncher(cluster, placement_for(cluster, ["client1", "client2"]))
    cell = run_matrix(launcher, spec, tmp_path / "run", ["epoll"])["open/epoll/r400/c4/s64"]
    assert cell["status"] == "ok", cell["reason"]
    shards = cell["load"]["shards"]
    assert [s["host"] for s in shards] == ["client1", "client2"]
    for shard in shards:
        assert shard["rate_rps"] == pytest.approx(200.0)
        assert shard["connections"] == 2
        # On schedule: the load generator's own rule (95% of its target sent).
        assert not shard["behind_schedule"], shard
        assert shard["achieved_rate_rps"] >= 0.95 * 200.0, shard
    merged = HdrHistogram.decode(cell["histogram"])
    assert merged.get_total_count() == sum(s["latency_count"] for s in shards)
    # Each shard's histogram counts its requests as the load generator does
    # (by intended send time in open loop); both totals add up across hosts.
    assert cell["metrics"]["requests"] == sum(s["requests"] for s in shards)
    assert all(s["latency_count"] > 0 for s in shards)


def test_a_server_host_that_cannot_bind_fails_its_cells_and_the_run_goes_on(
        cluster: Cluster, tmp_path: Path) -> None:
    placement = placement_for(cluster, ["client1"])
    # An address from the benchmarking range that no interface here has.
    unbindable = replace(placement, addresses={**(placement.addresses or {}),
                                               "server": "198.18.255.254"})
    spec = {"closed": {"connections": [2], "duration_s": 0.5, "warmup_s": 0.1},
            "neighbour": {"phases": ["solo"], "duration_s": 0.5}}
    cells = run_matrix(DaskLauncher(cluster, unbindable), spec, tmp_path / "run", ["select"])
    failed = cells["closed/select/c2/s64"]
    assert failed["status"] == "failed"
    assert "server did not start" in failed["reason"]
    assert "on host server (198.18.255.254)" in failed["reason"]
    assert cells["neighbour/solo"]["status"] == "ok", cells["neighbour/solo"]["reason"]


def test_a_dead_client_worker_fails_the_cell_and_the_next_cell_runs(
        cluster: Cluster, tmp_path: Path) -> None:
    placement = placement_for(cluster, ["client2"])
    launcher = DaskLauncher(cluster, placement)
    spec = {"closed": {"connections": [2, 3], "duration_s": 1.5, "warmup_s": 0.2}}
    victim = cluster.call("client2", os.getpid)
    started: list[int] = []

    class KillOnFirstLoad:
        def cell_started(self, cell: Any) -> None:
            if not started:  # the worker dies while its shard runs
                started.append(victim)
                threading.Timer(1.0, os.kill, (victim, 9)).start()

        def cell_finished(self, cell: Any, record: CellRecord) -> None:
            if not record.ok:  # let the nanny bring the worker back
                cluster.await_hosts(["client2"])

    checked = check_spec(spec, "test")
    store = RunStore.create(tmp_path / "run", run_id="run", profile="test",
                            environment={"placement": placement.as_dict()}, matrix=checked)
    try:
        assert Runner(launcher, store, Settings(), KillOnFirstLoad()).run(
            expand(Profile("test", checked), ["select"]))
    finally:
        launcher.close()
    cells = {c["key"]: c for c in read_results(tmp_path / "run")["cells"]}
    first, second = cells["closed/select/c2/s64"], cells["closed/select/c3/s64"]
    assert first["status"] == "failed" and "host client2" in first["reason"], first["reason"]
    assert second["status"] == "ok", second["reason"]


def test_stop_all_leaves_nothing_on_any_host(cluster: Cluster) -> None:
    placement = placement_for(cluster, ["client1"])
    launcher = DaskLauncher(cluster, placement)
    server = launcher.start_server("select", {})
    neighbour = launcher.start_neighbour(30.0)
    assert server.poll() is None and neighbour.running()
    launcher.stop_all()
    codes = launcher.owned("server", remote.poll, [server.token, neighbour.process.token])
    assert set(codes.values()) == {remote.UNKNOWN_PROCESS}  # stopped and forgotten
    import psutil

    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == "zombie"
    launcher.close()


HOSTS_AB = ["--server-host", "a", "--client-hosts", "b"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--server-host", "a"], "add --cluster"),
    (["--cluster", "http://x"], "bad --cluster"),
    (["--cluster", "tcp://198.18.0.1:8786"], "needs --server-host"),
    (["--cluster", "local", "--client-hosts", "a,a"], "must be distinct"),
    (["--cluster", "tcp://198.18.0.1:8786", *HOSTS_AB], "add --insecure"),
    (["--cluster", "tls://198.18.0.1:8786", *HOSTS_AB], "needs the runner's credentials"),
    (["--cluster", "tls://198.18.0.1:8786", *HOSTS_AB, "--insecure"], "tcp:// scheduler only"),
    (["--cluster", "local", "--insecure"], "makes its own credentials"),
    (["--cluster", "tls://198.18.0.1:8786", *HOSTS_AB, "--tls-ca", "/nonexistent/ca.pem",
      "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/c.key"],
     "CA certificate /nonexistent/ca.pem: no such file"),
    (["--cluster", "tls://198.18.0.1:8786", *HOSTS_AB, "--security", "/nonexistent.toml"],
     "no such file"),
])
def test_bad_cluster_options_are_one_line_errors(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err


def test_a_host_that_stops_answering_fails_the_cell_and_the_run_goes_on(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iobench.benchmarks.run import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "CALL_TIMEOUT_S", 2.0)
    placement = placement_for(cluster, ["client1"])
    launcher = DaskLauncher(cluster, placement)
    spec = {"closed": {"connections": [2, 3], "duration_s": 1.0, "warmup_s": 0.2}}
    frozen = psutil.Process(cluster.call("client1", os.getpid))

    class FreezeFirstLoad:
        """SIGSTOP the client host's worker during the first cell: it stops answering."""

        def cell_started(self, cell: Any) -> None:
            if cell.connections == 2:
                threading.Timer(0.5, frozen.suspend).start()

        def cell_finished(self, cell: Any, record: Any) -> None:
            frozen.resume()

    checked = check_spec(spec, "test")
    store = RunStore.create(tmp_path / "run", run_id="run", profile="test",
                            environment={"placement": placement.as_dict()}, matrix=checked)
    try:
        assert Runner(launcher, store, Settings(), FreezeFirstLoad()).run(
            expand(Profile("test", checked), ["select"]))
    finally:
        frozen.resume()
        launcher.close()
    cells = {c["key"]: c for c in read_results(tmp_path / "run")["cells"]}
    first, second = cells["closed/select/c2/s64"], cells["closed/select/c3/s64"]
    assert first["status"] == "failed", first
    assert "host client1" in first["reason"] and "did not answer within" in first["reason"]
    assert second["status"] == "ok", second["reason"]


def test_ctrl_c_stops_every_process_on_every_host(tmp_path: Path) -> None:
    runner = start_run(tmp_path, "[closed]\nconnections = [2, 3]\nduration_s = 10.0\n"
                       "warmup_s = 0.2\n", "--cluster", "local",
                       "--client-hosts", "client1,client2", "--models", "select")
    seen: dict[int, psutil.Process] = {}
    try:
        wait_for_processes(runner, seen, lambda running: (
            sum("iobench.loadgen" in c for c in running) == 2
            and any("iobench.servers" in c for c in running)))
        os.killpg(runner.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        assert runner.wait(60) == 130
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    left = [p for p in psutil.wait_procs([p for p in seen.values() if alive(p)],
                                         timeout=3)[1]]
    assert not left, [(p.pid, command_line(p)) for p in left if alive(p)]
    assert runner.stderr is not None and "interrupted" in runner.stderr.read()


def test_resume_keeps_the_placement_across_hosts(cluster: Cluster, tmp_path: Path) -> None:
    from argparse import Namespace

    from iobench.benchmarks.run.cli import plan_resume
    from iobench.common.errors import UsageError

    placement = placement_for(cluster, ["client1"])
    spec = check_spec({"idle": {"connections": [0], "duration_s": 0.3}}, "test")
    RunStore.create(tmp_path / "run", run_id="run", profile="test",
                    environment={"placement": placement.as_dict()}, matrix=spec)

    def args(**given: Any) -> Namespace:
        options = {"resume": tmp_path / "run", "out": None, "models": None, "repeat": None,
                   "profile": "quick", "server_cpus": None, "client_cpus": None,
                   "cluster": "local", "server_host": None, "client_hosts": "client1",
                   "force": False}
        return Namespace(**{**options, **given})

    assert plan_resume(args(), cluster)[3] == placement
    with pytest.raises(UsageError, match="not comparable"):
        plan_resume(args(client_hosts="client2"), cluster)
    with pytest.raises(UsageError, match="not on one host"):
        plan_resume(args(cluster=None, client_hosts=None), None)


def test_an_unreachable_scheduler_is_a_one_line_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from iobench.benchmarks.run import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2.0)
    # Nothing listens on loopback's port 1.
    assert main(["run", "--cluster", "tcp://127.0.0.1:1", "--server-host", "a",
                 "--client-hosts", "b", "--insecure"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err
    assert "warning: --insecure" in err  # said before anything is tried
    assert "Traceback" not in err and err.count("\n") == 2, err
