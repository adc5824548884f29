"""The matrix across hosts: a launcher that places processes on Dask workers.

Each host runs one Dask worker named after it (``dask worker SCHED --name H
--nthreads 1``). :class:`DaskLauncher` starts the server on the server host's
worker, bound to that host's address and pinned as locally; it splits the
load generator into shards, one per client host, each with its share of the
connections and of the open-loop rate, and merges their reports (histograms
with HdrHistogram ``add``, see :mod:`iobench.loadgen.shards`); it samples the
server on the server's host and brings the readings back with the cell. The
runner sees the same :class:`~iobench.benchmarks.run.launcher.Launcher` it
sees locally: the matrix logic does not change.

Everything a worker does for it is a short control call
(:mod:`iobench.benchmarks.run.remote`) made with ``Client.run``, bounded by a
time-out: a worker that died or a host that does not answer raises
:class:`HostUnavailable`, which fails the cell in progress with its reason,
and the next cell asks the scheduler again (a worker's nanny may have
restarted it meanwhile). ``cluster = "local"`` starts a ``LocalCluster`` on
this machine with one worker per host name, so this code path is the one the
tests run everywhere.

Every connection is mutual TLS (Dask's Security, :mod:`iobench.benchmarks.run.certs`):
the runner, the scheduler and each host show a certificate of the run's CA.
A worker becomes a host of the run only when the certificate it presents
names that host (:meth:`Cluster.check_host_names`); ``--cluster local``
makes credentials in memory for the run. Plain ``tcp://`` takes
``--insecure``. What the launcher starts on a host is bound to a lease it
renews from a thread (:class:`LeaseRenewer`); when the runner dies, each
host stops it all within seconds (see :mod:`iobench.benchmarks.run.remote`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import replace
from typing import Any

from iobench.benchmarks.run import remote
from iobench.benchmarks.run.accounting import Cgroup
from iobench.benchmarks.run.certs import (
    RUNNER,
    SCHEDULER,
    CertificateError,
    Credentials,
    certificate_names,
    memory_credentials,
)
from iobench.benchmarks.run.launcher import (
    Launcher,
    LoadResult,
    LoadSpec,
    NeighbourHandle,
    Placement,
    Process,
    tail,
)
from iobench.benchmarks.run.sampler import Edge, Memory, Sampler, Series, TreeReading
from iobench.benchmarks.run.syscalls import SyscallCounter, SyscallCounts
from iobench.loadgen.params import split_evenly
from iobench.loadgen.report import LoadReport
from iobench.loadgen.shards import merge_reports, shard_shares
from iobench.servers.process import READY_TIMEOUT, ServerStartError, server_report

LOCAL_CLUSTER = "local"
# Connecting to the scheduler, and waiting for the named workers to be there.
CONNECT_TIMEOUT_S = 20.0
# A control call (start, poll, stop, sample) that takes longer means the host is
# not answering; a local call takes a few milliseconds.
CALL_TIMEOUT_S = 10.0
# Starting a server waits for its ready line on the host.
SERVER_CALL_TIMEOUT_S = READY_TIMEOUT + CALL_TIMEOUT_S
# A host waits for its processes to exit in slices this long, so a host that
# stops answering is noticed while a long cell runs.
WAIT_SLICE_S = 1.0
# Stopping what a host started, on the way out: do not wait long for a dead one.
STOP_CALL_TIMEOUT_S = 5.0
# The runner renews its lease on every host this often: a quarter of the lease,
# so three renewals can be late before a host gives up on the run.
RENEW_S = remote.LEASE_S / 4
# A renewal that takes longer is abandoned; the next one follows.
RENEW_CALL_TIMEOUT_S = RENEW_S * 2


class HostUnavailable(RuntimeError):
    """A host's Dask worker is missing, died, or did not answer in time."""


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` (Dask wraps it in its own), if one is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Cluster:
    """A Dask client, and the scheduler's workers by name (one worker per host)."""

    def __init__(self, address: str, hosts: list[str],
                 credentials: Credentials | None = None) -> None:
        """Connect to the scheduler at ``address`` (or start ``local``) and wait for ``hosts``.

        ``credentials`` are the runner's (CA, certificate, key) for a ``tls://``
        scheduler; None with ``tcp://`` (the caller asked for ``--insecure``).
        ``local`` makes its own.
        """
        from distributed import Client

        self.address = address
        self.local_cluster: Any = None
        self._addresses: dict[str, str] = {}
        self._offsets: dict[str, float] = {}
        self.security: Any = None
        logging.getLogger("distributed").setLevel(logging.ERROR)
        if address == LOCAL_CLUSTER:
            local = memory_credentials(hosts)
            self.security = local[RUNNER].security("client")
            self.local_cluster = start_local_cluster(hosts, local)
            self.client = Client(self.local_cluster, security=self.security,
                                 timeout=CONNECT_TIMEOUT_S)
        else:
            if credentials is not None:
                self.security = credentials.security("client")
            try:
                self.client = Client(address, security=self.security, timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:  # Dask raises many kinds; each is one line
                tls = _tls_failure(exc)
                if tls is not None:
                    raise CertificateError(f"the TLS handshake with the Dask scheduler at "
                                           f"{address} failed: {tls.reason or tls}; are the "
                                           "CA and certificate the cluster's?") from None
                if credentials is not None and isinstance(exc, (OSError, TimeoutError)):
                    raise HostUnavailable(f"cannot reach the Dask scheduler at {address} "
                                          f"over TLS: {exc} (a scheduler that refused the "
                                          "runner's certificate looks the same)") from None
                raise HostUnavailable(f"cannot reach the Dask scheduler at {address}: "
                                      f"{type(exc).__name__}: {exc}") from None
        self.await_hosts(hosts)
        if self.security is not None:
            try:
                self.check_host_names(hosts)
            except BaseException:
                self.close()
                raise

    def check_host_names(self, hosts: list[str]) -> None:
        """Refuse a worker whose certificate does not name the host it stands for.

        A worker picks its own name (``--name server``); any holder of a
        certificate of the CA could pick the name of the server's host and be
        sent the run's processes. So the runner opens a TLS connection to each
        worker itself, as a client of the CA, and reads the name in the
        certificate the worker presents. :meth:`address_of` does it again
        whenever it learns a host's address anew (a worker restarted by its
        nanny), so no worker is ever called as a host before it was checked.
        """
        self._addresses.clear()
        for host in dict.fromkeys(hosts):
            self.address_of(host, starting=True)

    def _check_name(self, host: str, address: str) -> None:
        context = self.security.get_connection_args("client")["ssl_context"]
        ip, _, port = address.removeprefix("tls://").rpartition(":")
        try:
            with socket.create_connection((ip.strip("[]"), int(port)),
                                          timeout=CALL_TIMEOUT_S) as raw, \
                    context.wrap_socket(raw) as tls:
                peer = tls.getpeercert() or {}
        except (OSError, ValueError) as exc:
            raise CertificateError(f"worker {host!r} at {address}: cannot check its "
                                   f"certificate ({exc})") from None
        names = certificate_names(peer)
        if host not in names:
            raise CertificateError(f"worker {host!r} at {address} presents a certificate "
                                   f"for {', '.join(sorted(names)) or 'no name'}, not for "
                                   f"{host!r}; refusing it as host {host!r}")

    def await_hosts(self, hosts: list[str]) -> None:
        """Wait (bounded) until a worker of every name in ``hosts`` is registered."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            missing = sorted(set(hosts) - set(self.workers()))
            if not missing:
                return
            if time.monotonic() > deadline:
                known = ", ".join(sorted(self.workers())) or "none"
                self.close()
                raise HostUnavailable(f"no Dask worker named {', '.join(missing)} at "
                                      f"{self.address} (workers: {known}); start one with "
                                      f"dask worker {self.address} --name HOST --nthreads 1")
            time.sleep(0.2)

    def workers(self) -> dict[str, dict[str, Any]]:
        """Worker name -> its scheduler record (address under "address", IP under "host")."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {str(worker["name"]): {**worker, "address": address}
                for address, worker in info.items()}

    def address_of(self, host: str, starting: bool = False) -> str:
        """The worker address of ``host``, asked of the scheduler after any failure, and
        its certificate checked (over TLS) before it is used.

        A worker that fails the check is a CertificateError while the run
        ``starting``, and later a HostUnavailable that fails the cell in
        progress (the next cell asks again).
        """
        if host not in self._addresses:
            worker = self.workers().get(host)
            if worker is None:
                raise HostUnavailable(f"host {host} has no Dask worker at {self.address} "
                                      "any more")
            if self.security is not None:
                try:
                    self._check_name(host, worker["address"])
                except CertificateError as exc:
                    if starting:
                        raise
                    raise HostUnavailable(str(exc)) from None
            self._addresses[host] = worker["address"]
        return self._addresses[host]

    def call(self, host: str, function: Callable[..., Any], *args: Any,
             timeout: float | None = None) -> Any:
        """``function(*args)`` on ``host``'s worker; HostUnavailable if it cannot be done."""
        return self.call_many([host], function, *args, timeout=timeout)[host]

    def call_many(self, hosts: list[str], function: Callable[..., Any], *args: Any,
                  timeout: float | None = None, relearn: bool = True) -> dict[str, Any]:
        """``function(*args)`` on every host at once; host -> what it returned.

        After a failure the hosts' addresses are asked of the scheduler again
        (and checked again) on the next call, unless not ``relearn``: a lease
        renewal that was late behind a busy host is no reason to.
        """
        timeout = CALL_TIMEOUT_S if timeout is None else timeout
        addresses = {host: self.address_of(host) for host in hosts}
        where = ", ".join(f"{host} ({address})" for host, address in addresses.items())
        try:
            results = self.client.run(function, *args, workers=list(addresses.values()),
                                      callback_timeout=timeout)
            return {host: results[address] for host, address in addresses.items()}
        except TimeoutError:
            problem = f"did not answer within {timeout:g} s"
        except OSError as exc:  # the comm errors of distributed are OSErrors
            problem = f"{type(exc).__name__}: {exc}"
        except KeyError as exc:  # the scheduler no longer knows the worker
            problem = f"left the cluster: {exc}"
        for host in hosts if relearn else ():  # a nanny may have restarted it: ask again
            self._addresses.pop(host, None)
        raise HostUnavailable(f"host {where}: {problem}")

    def clock_offset(self, host: str) -> float:
        """``host``'s monotonic clock minus this one's, to half a round trip."""
        if host not in self._offsets:
            before = time.monotonic()
            there = self.call(host, remote.monotonic)
            self._offsets[host] = there - (before + time.monotonic()) / 2
        return self._offsets[host]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.local_cluster is not None:
            with contextlib.suppress(Exception):
                self.local_cluster.close()
            self.local_cluster = None


def start_local_cluster(hosts: list[str], credentials: dict[str, Credentials]) -> Any:
    """A LocalCluster on loopback with one single-threaded worker process per host name,
    over mutual TLS: the scheduler and each worker show their own certificate of
    ``credentials`` (made for this run), so no other local user can join or submit.

    The workers ignore SIGINT: a Ctrl-C on the terminal reaches the whole
    foreground process group, and a worker that died of it could no longer
    stop the processes it started. The runner stops them, then the cluster.
    """
    from distributed import LocalCluster

    scheduler = credentials[SCHEDULER]
    security = scheduler.security("scheduler")
    # The cluster's own client (it talks to the scheduler) is the runner.
    security.tls_client_cert, security.tls_client_key = (credentials[RUNNER].cert,
                                                         credentials[RUNNER].key)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the workers
    try:
        cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None, protocol="tls://",
                               security=security, silence_logs=logging.ERROR)
        template = next(iter(cluster.new_worker_spec().values()))
        for name in dict.fromkeys(hosts):
            cluster.worker_spec[name] = {
                "cls": template["cls"],
                "options": {**template["options"], "name": name,
                            "security": credentials[name].security("worker")}}
        # SpecCluster starts the workers of its spec, each named by its key.
        cluster.sync(cluster._correct_state)
    finally:
        signal.signal(signal.SIGINT, previous)
    return cluster


def cluster_placement(cluster: Cluster, server_host: str, client_hosts: list[str],
                      server_cpus: list[int] | None, client_cpus: list[int] | None,
                      environments: dict[str, dict[str, Any]]) -> Placement:
    """The placement of a cluster run: hosts, their addresses and each side's CPUs.

    By default the server gets its host's first usable CPU and the load
    generator the other usable CPUs of the first client host (all of them if
    only one), the rule a local run follows: when hosts are namespaces or
    containers of one machine, the two sides stay on disjoint CPUs.
    """
    workers = cluster.workers()
    server_usable = environments[server_host]["usable_cpus"]
    server = server_cpus or server_usable[:1]
    if client_cpus is None:
        usable = environments[client_hosts[0]]["usable_cpus"]
        client_cpus = [c for c in usable if c not in server] or server
    hosts = dict.fromkeys([server_host, *client_hosts])
    return Placement(server, client_cpus, cluster=cluster.address, server_host=server_host,
                     client_hosts=list(client_hosts),
                     addresses={host: str(workers[host]["host"]) for host in hosts})


def host_environments(cluster: Cluster, hosts: list[str]) -> dict[str, dict[str, Any]]:
    """Every host's environment (CPU, kernel, Python, package versions)."""
    return {host: cluster.call(host, remote.describe_host)["environment"]
            for host in dict.fromkeys(hosts)}


class DaskServerHandle(Process):
    """The server on its host: where it listens, its pid there, and how to reach it."""

    def __init__(self, launcher: DaskLauncher, info: dict[str, Any]) -> None:
        self.launcher = launcher
        self.on = launcher.placement.server_host or ""
        self.token: str = info["token"]
        self.pid = int(info["pid"])
        self.host: str = info["host"]
        self.port = int(info["port"])
        self.exit_code: int | None = None
        # The cgroup lives on the server's host (its sampler uses it); only why not, here.
        self.cgroup_note: str | None = info.get("cgroup_note")
        self.work: dict[str, Any] | None = info.get("work")

    def poll(self) -> int | None:
        code = self.launcher.owned(self.on, remote.poll, [self.token])[self.token]
        if code == remote.UNKNOWN_PROCESS:
            raise HostUnavailable(f"host {self.on} lost the server (its worker was restarted)")
        return code

    def pause(self) -> None:
        self.launcher.owned(self.on, remote.signal_server, self.token, signal.SIGSTOP)

    def resume(self) -> None:
        self.launcher.owned(self.on, remote.signal_server, self.token, signal.SIGCONT)

    def stop(self) -> int | None:
        if not self.stopped:
            self.stopped = True
            with contextlib.suppress(HostUnavailable):
                self.exit_code = self.launcher.owned(self.on, remote.stop, self.token)
        return self.exit_code

    def stderr_text(self) -> str:
        try:
            return self.launcher.owned(self.on, remote.server_stderr, self.token)
        except HostUnavailable:
            return ""

    def reported(self) -> dict[str, Any] | None:
        """The work calibration from the ready line; prefork's accepts are not
        collected from another host (a cell's figures from them stay null)."""
        return server_report(self.work, None)


class RemoteProcess(Process):
    """A process started on a host: polled, waited for and read over Dask."""

    def __init__(self, launcher: DaskLauncher, on: str, info: dict[str, Any]) -> None:
        self.launcher = launcher
        self.on = on
        self.token: str = info["token"]
        self.pid = int(info["pid"])
        self._output: dict[str, Any] | None = None

    def poll(self) -> int | None:
        code = self.launcher.owned(self.on, remote.poll, [self.token])[self.token]
        if code == remote.UNKNOWN_PROCESS:
            raise HostUnavailable(f"host {self.on} lost process {self.token} "
                                  "(its worker was restarted)")
        return code

    def wait(self, timeout_s: float) -> int | None:
        return wait_processes([self], timeout_s)[0]

    def output(self) -> dict[str, Any]:
        if self._output is None or self._output.get("returncode") is None:
            self._output = self.launcher.owned(self.on, remote.output, self.token)
        return self._output

    def stdout_text(self) -> str:
        return self.output().get("stdout", "")

    def stderr_text(self) -> str:
        out = self.output()
        return out.get("stderr", out.get("error", ""))

    def stop(self) -> int | None:
        if not self.stopped:
            self.stopped = True
            with contextlib.suppress(HostUnavailable):
                return self.launcher.owned(self.on, remote.stop, self.token)
        return None


def wait_processes(processes: list[RemoteProcess], timeout_s: float
                   ) -> tuple[int | None, float | None]:
    """Wait for processes on their hosts, all at once: the worst exit code and the last
    exit time (on this machine's clock), or (None, None) after ``timeout_s``.

    The hosts wait themselves (:func:`remote.wait_exit`), in slices of at most
    :data:`WAIT_SLICE_S`, so an exit is noticed within milliseconds, not a
    polling round trip later.
    """
    launcher = processes[0].launcher
    hosts = list(dict.fromkeys(p.on for p in processes))
    tokens = [p.token for p in processes]
    deadline = time.monotonic() + timeout_s
    while True:
        slice_s = min(WAIT_SLICE_S, max(deadline - time.monotonic(), 0.0))
        answers = launcher.cluster.call_many(hosts, remote.wait_exit, launcher.owner, tokens,
                                             slice_s, timeout=slice_s + CALL_TIMEOUT_S)
        exits: dict[str, tuple[int | None, float | None]] = {}
        for host, answer in answers.items():
            exits.update({t: (code, None if at is None
                              else at - launcher.cluster.clock_offset(host))
                          for t, (code, at) in answer.items()})
        lost = [p for p in processes if p.token not in exits]
        if lost:
            raise HostUnavailable(f"host {lost[0].on} lost process {lost[0].token} "
                                  "(its worker was restarted)")
        codes = [exits[t][0] for t in tokens]
        if all(code is not None for code in codes):
            worst = next((code for code in codes if code != 0), 0)
            return worst, max(at for _, at in exits.values() if at is not None)
        if time.monotonic() >= deadline:
            return None, None


class ShardedLoad:
    """The load generator's shards, one per client host; waited for and merged as one."""

    pid = None  # on other hosts: the server's sampler has nothing of them to read

    def __init__(self, shards: list[RemoteProcess]) -> None:
        self.shards = shards
        self.ended_s: float | None = None

    tells_window = False  # told on other hosts' clocks: placed when they report

    def window(self) -> tuple[float, float] | None:
        return None

    def wait(self, timeout_s: float) -> int | None:
        """The worst exit code once every shard has ended, or None after ``timeout_s``."""
        code, self.ended_s = wait_processes(self.shards, timeout_s)
        return code

    def result(self, timeout_s: float) -> LoadResult:
        code = self.wait(timeout_s)
        if code is None:
            self.stop()
        outputs = [shard.output() for shard in self.shards]
        stderr = " | ".join(f"{shard.on}: {tail(out.get('stderr') or out.get('error') or '')}"
                            for shard, out in zip(self.shards, outputs, strict=True)
                            if out.get("stderr") or out.get("error"))
        try:
            reports = [LoadReport.from_json(out.get("report")) for out in outputs]
        except ValueError:  # a shard wrote no report, or not one
            return LoadResult(code, None, stderr)
        if code is None:
            return LoadResult(code, None, stderr)
        hosts = [shard.on for shard in self.shards]
        return LoadResult(code, merge_reports(reports, hosts), stderr, ended_s=self.ended_s)

    def stop(self) -> None:
        for shard in self.shards:
            shard.stop()


class RemoteSampler(Sampler):
    """The runner's sampler, run on the server's host; readings come back at :meth:`stop`.

    Readings are timestamped with the host's monotonic clock; they are moved
    onto the runner's clock by the offset measured when sampling started
    (half a round trip of uncertainty, well under the sampling interval).
    """

    def __init__(self, launcher: DaskLauncher, on: str) -> None:
        super().__init__()
        self.launcher = launcher
        self.on = on
        self.offset_s = 0.0
        self._running = False
        self._accounting: dict[str, str | None] = {}

    def start(self) -> Sampler:
        self.launcher.owned(self.on, remote.sampler_start)
        self.offset_s = self.launcher.cluster.clock_offset(self.on)
        self._running = True
        return self

    def watch(self, name: str, pid: int, cgroup: Cgroup | None = None,
              exact: bool = True) -> None:
        self._accounting[name] = self.launcher.owned(self.on, remote.sampler_watch, name, pid,
                                                     exact)
        self.series.setdefault(name, Series())

    def accounting(self, name: str) -> str | None:
        return self._accounting.get(name)

    def sample(self, max_read_s: float | None = None) -> None:
        self.launcher.owned(self.on, remote.sampler_sample)

    def edge(self, cpu_only: bool = False) -> Edge:
        """An edge read on the server's host, moved onto the runner's clock.

        Its per-CPU times are the server host's: the client's CPUs are elsewhere.
        """
        data = self.launcher.owned(self.on, remote.sampler_edge, cpu_only)
        if data is None:
            return Edge(time.monotonic(), {}, [], client_cpus_here=False)
        shift = self.offset_s
        trees = {name: TreeReading(**{**r, "t_s": r["t_s"] - shift})
                 for name, r in data["trees"].items()}
        return Edge(data["t_s"] - shift, trees, data["cpu_times"], client_cpus_here=False)

    def memory(self, name: str) -> Memory | None:
        data = self.launcher.owned(self.on, remote.sampler_memory, name)
        return Memory(**data) if data is not None else None

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        try:
            data = self.launcher.owned(self.on, remote.sampler_stop)
        except HostUnavailable:
            return  # no readings: the cell's server figures stay null
        if data is None:
            return
        shift = self.offset_s
        for name, readings in data["series"].items():
            self.series[name] = Series([TreeReading(**{**r, "t_s": r["t_s"] - shift})
                                        for r in readings])
        self.system_t_s = [t - shift for t in data["system_t_s"]]
        self.system_cpu_percent = data["system_cpu_percent"]
        self.interval_s = data["interval_s"]
        self.thread_cpu_s = data.get("thread_cpu_s", 0.0)
        self.thread_elapsed_s = data.get("thread_elapsed_s", 0.0)


class RemoteSyscallCounter(SyscallCounter):
    """The server's system call counter, run on the server's host (perf attaches there)."""

    def __init__(self, launcher: DaskLauncher, on: str, pid: int) -> None:
        super().__init__(pid)
        self.launcher, self.on = launcher, on
        self.reason = None  # whether perf works is for the server's host to say
        self.token: str | None = None

    def start(self) -> None:
        self.token = self.launcher.owned(self.on, remote.syscalls_start, self.pid)

    def enable(self) -> None:
        if self.token is not None:
            self.launcher.owned(self.on, remote.syscalls_switch, self.token, True)

    def disable(self) -> None:
        if self.token is not None:
            self.launcher.owned(self.on, remote.syscalls_switch, self.token, False)

    def stop(self) -> SyscallCounts:
        if self.token is None:
            return SyscallCounts(reason="the counter never started")
        token, self.token = self.token, None
        try:
            return SyscallCounts(**self.launcher.owned(self.on, remote.syscalls_stop, token))
        except HostUnavailable as exc:
            return SyscallCounts(reason=str(exc))


class RemoteIdleSocket:
    """An idle connection held on a client host, as much of a socket as the runner asks.

    The runner only asks whether the server closed it (non-blocking ``recv``
    returning ``b""``); the host answers for its whole group at once.
    """

    def __init__(self, group: IdleGroup, index: int) -> None:
        self.group = group
        self.index = index

    def setblocking(self, flag: bool) -> None:
        """The connection stays on its host; nothing to set here."""

    def recv(self, size: int) -> bytes:
        if self.index < self.group.closed():
            return b""
        raise BlockingIOError


class IdleGroup:
    """The idle connections one client host holds, and how many the server closed."""

    def __init__(self, launcher: DaskLauncher, on: str, token: str, count: int) -> None:
        self.launcher, self.on, self.token, self.count = launcher, on, token, count
        self._closed: int | None = None

    def closed(self) -> int:
        if self._closed is None:
            self._closed = self.launcher.owned(self.on, remote.idle_closed,
                                              self.token)
        return self._closed

    def close(self) -> None:
        with contextlib.suppress(HostUnavailable):
            self.launcher.owned(self.on, remote.close_idle, self.token)


class DaskLauncher(Launcher):
    """Runs the server on one host's Dask worker and the load on the client hosts'."""

    def __init__(self, cluster: Cluster, placement: Placement) -> None:
        if placement.server_host is None or not placement.client_hosts:
            raise ValueError("a cluster placement names a server host and client hosts")
        self.cluster = cluster
        self.placement = placement
        self.server_host: str = placement.server_host
        self.client_hosts: list[str] = list(placement.client_hosts)
        # Names what this launcher starts on every host, so stop_all stops exactly that.
        self.owner = uuid.uuid4().hex
        self.renewer = LeaseRenewer(cluster, self.hosts, self.owner)

    def call(self, host: str, function: Callable[..., Any], *args: Any,
             timeout: float | None = None) -> Any:
        return self.cluster.call(host, function, *args, timeout=timeout)

    def owned(self, host: str, function: Callable[..., Any], *args: Any,
              timeout: float | None = None) -> Any:
        """``function(owner, *args)`` on ``host``: about what this launcher started there."""
        return self.cluster.call(host, function, self.owner, *args, timeout=timeout)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys([self.server_host, *self.client_hosts]))

    def start_server(self, model: str, params: dict[str, Any]) -> DaskServerHandle:
        assert self.placement.addresses is not None
        address = self.placement.addresses[self.server_host]
        info = self.owned(self.server_host, remote.start_server, model, params,
                         address, self.placement.server_cpus, timeout=SERVER_CALL_TIMEOUT_S)
        if "error" in info:
            raise ServerStartError(f"on host {self.server_host} ({address}): {info['error']}")
        return DaskServerHandle(self, info)

    def start_load(self, spec: LoadSpec) -> ShardedLoad:
        shares = shard_shares(spec.connections, spec.rate_rps, len(self.client_hosts))
        idle = split_evenly(spec.idle, len(shares))
        shards = []
        try:
            for host, (connections, rate), silent in zip(self.client_hosts, shares, idle,
                                                         strict=False):
                shard = replace(spec, connections=connections, rate_rps=rate,
                                workers=min(spec.workers, connections), idle=silent)
                arguments = shard.arguments(None)
                info = self.owned(host, remote.start_load, arguments,
                                 self.placement.client_cpus)
                if "error" in info:
                    raise HostUnavailable(f"cannot start the load generator on host {host}: "
                                          f"{info['error']}")
                shards.append(RemoteProcess(self, host, info))
        except BaseException:
            for started in shards:
                started.stop()
            raise
        return ShardedLoad(shards)

    def start_neighbour(self, duration_s: float, delay_s: float = 0.0) -> NeighbourHandle:
        info = self.owned(self.server_host, remote.start_neighbour, duration_s,
                         delay_s, self.placement.server_cpus)
        if "error" in info:
            raise HostUnavailable(f"cannot start the neighbour job on host {self.server_host}: "
                                  f"{info['error']}")
        return NeighbourHandle(RemoteProcess(self, self.server_host, info))

    @contextlib.contextmanager
    def idle_connections(self, host: str, port: int, count: int
                         ) -> Iterator[list[RemoteIdleSocket]]:
        groups: list[IdleGroup] = []
        try:
            for on, (share, _) in zip(self.client_hosts,
                                      shard_shares(count, None, len(self.client_hosts)),
                                      strict=False):
                info = self.owned(on, remote.open_idle, host, port, share)
                if "error" in info:
                    raise OSError(info.get("errno") or 0,
                                  f"{info['error']} (from host {on})")
                groups.append(IdleGroup(self, on, info["token"], share))
            yield [RemoteIdleSocket(group, index) for group in groups
                   for index in range(group.count)]
        finally:
            for group in groups:
                group.close()

    def sampler(self) -> Sampler:
        return RemoteSampler(self, self.server_host)

    def syscall_counter(self, pid: int) -> SyscallCounter:
        return RemoteSyscallCounter(self, self.server_host, pid)

    def stop_all(self, keep: Collection[int] = ()) -> None:
        """Stop what this launcher started on every host that still answers (it measures
        no rounds in place, so it keeps none)."""
        for host in self.hosts:
            with contextlib.suppress(HostUnavailable):
                self.owned(host, remote.stop_all, timeout=STOP_CALL_TIMEOUT_S)

    def close(self) -> None:
        self.renewer.stop()
        for host in self.hosts:
            with contextlib.suppress(HostUnavailable):
                self.owned(host, remote.forget, timeout=STOP_CALL_TIMEOUT_S)


class LeaseRenewer:
    """Renews a launcher's lease on every host from a thread, until stopped.

    The first renewal is made before the launcher starts anything, so every
    host holds the lease (and its reaper) from the start. A host that does
    not answer a renewal is left to the cell's own calls to report.
    """

    def __init__(self, cluster: Cluster, hosts: list[str], owner: str) -> None:
        self.cluster, self.hosts, self.owner = cluster, hosts, owner
        self._stopped = threading.Event()
        self.renew()
        self._thread = threading.Thread(target=self._run, name="iobench-lease", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        with contextlib.suppress(HostUnavailable):
            self.cluster.call_many(self.hosts, remote.renew, self.owner,
                                   timeout=RENEW_CALL_TIMEOUT_S, relearn=False)

    def _run(self) -> None:
        while not self._stopped.wait(RENEW_S):
            with contextlib.suppress(Exception):  # a closing client; the next try follows
                self.renew()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(RENEW_CALL_TIMEOUT_S + CALL_TIMEOUT_S)
