"""Runs across hosts that are safe to start: mutual TLS, hosts named by their
certificates, the runner's credentials checked, and a lease that stops a
dead runner's processes on every host.

Most tests start a LocalCluster of their own (the code path of ``--cluster
local``); starting one takes a few seconds.
"""

from __future__ import annotations

import datetime
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytest.importorskip("distributed", reason="the cluster extra is not installed: "
                    "pip install 'iobench[cluster]'")
pytest.importorskip("cryptography", reason="the cluster extra is not installed: "
                    "pip install 'iobench[cluster]'")

from iobench.benchmarks.run import certs, remote
from iobench.benchmarks.run import cluster as cluster_module
from iobench.benchmarks.run.certs import CertificateError, check_credentials, write_credentials
from iobench.benchmarks.run.cluster import Cluster, DaskLauncher, cluster_placement
from iobench.benchmarks.run.cluster import host_environments as environments_of
from iobench.cli import main
from tests.benchmarks.run.runs_watched import alive, command_line, start_run, wait_for_processes

HOSTS = ["server", "client1"]
# The acceptance bound: nothing of a run is left this long after its runner died.
GONE_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster("local", HOSTS)
    try:
        yield started
    finally:
        started.close()


def refused(address: str, security: object | None) -> str | None:
    """Why a Dask client with ``security`` cannot use the scheduler at ``address`` (None: it
    could)."""
    from distributed import Client

    try:
        Client(address, security=security, timeout=5).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def test_the_local_cluster_refuses_a_plain_tcp_client_and_another_cas(cluster: Cluster) -> None:
    from distributed.security import Security

    address = cluster.local_cluster.scheduler_address
    assert address.startswith("tls://127.0.0.1:")
    assert all(worker.startswith("tls://") for worker in cluster.client.scheduler_info(
        n_workers=-1)["workers"])
    assert refused(address.replace("tls://", "tcp://"), None) is not None
    assert refused(address, Security.temporary()) is not None
    # The runner's own client, with the run's certificate, is served.
    assert cluster.call("server", os.getpid) > 0


def test_a_worker_whose_certificate_names_another_host_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made = certs.memory_credentials(HOSTS)

    def swapped(hosts: list[str]) -> dict[str, certs.Credentials]:
        # The worker named "server" holds a genuine certificate of the CA, for client1.
        return {**made, "server": made["client1"]}

    monkeypatch.setattr(cluster_module, "memory_credentials", swapped)
    with pytest.raises(CertificateError, match="presents a certificate for client1, not for "
                                               "'server'"):
        Cluster("local", HOSTS)


def test_a_lapsed_lease_stops_everything_on_the_host_and_removes_its_folder(
        cluster: Cluster) -> None:
    placement = cluster_placement(cluster, "server", ["client1"], None, None,
                                  environments_of(cluster, HOSTS))
    launcher = DaskLauncher(cluster, placement)
    server = launcher.start_server("busy-poll", {})
    neighbour = launcher.start_neighbour(60.0)
    folder = Path(cluster.call("server", _folder_of, launcher.owner))
    processes = [psutil.Process(server.pid), psutil.Process(neighbour.process.pid)]
    assert folder.is_dir() and all(p.is_running() for p in processes)
    time.sleep(2 * cluster_module.RENEW_S)
    assert all(alive(p) for p in processes)  # renewed: the run goes on
    launcher.renewer.stop()  # as when the runner dies: no more renewals
    stopped_at = time.monotonic()
    _, living = psutil.wait_procs(processes, timeout=GONE_WITHIN_S)
    gone_s = time.monotonic() - stopped_at
    assert not [p for p in living if alive(p)], [command_line(p) for p in living if alive(p)]
    deadline = time.monotonic() + 2.0
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not folder.exists()
    # Not before the lease could lapse: the last renewal was at most RENEW_S earlier.
    assert gone_s >= remote.LEASE_S - cluster_module.RENEW_S - 0.5, gone_s
    print(f"stopped {gone_s:.1f} s after renewals stopped (lease {remote.LEASE_S:g} s)")
    codes = cluster.call("server", remote.poll, launcher.owner, [server.token])
    assert codes == {server.token: remote.UNKNOWN_PROCESS}  # forgotten on the host
    launcher.close()


def _folder_of(owner: str) -> str:
    """Run on a worker: the folder of ``owner``'s run there."""
    return str(remote._OWNED[owner].path)


def test_sigkill_of_the_runner_during_cluster_local_leaves_no_process(tmp_path: Path) -> None:
    runner = start_run(tmp_path, "[closed]\nconnections = [2]\nduration_s = 30.0\n"
                       "warmup_s = 0.2\n", "--cluster", "local", "--client-hosts", "client1",
                       "--models", "busy-poll")
    seen: dict[int, psutil.Process] = {}
    try:
        wait_for_processes(runner, seen, lambda running: (
            any("iobench.loadgen" in c and "--json" in c for c in running)
            and any("iobench.servers" in c for c in running)))
        folders = {Path(words[words.index("--json") + 1]).parent
                   for words in (command_line(p) for p in seen.values() if alive(p))
                   if "--json" in words}
        runner.send_signal(signal.SIGKILL)  # the runner alone: no clean-up of its own runs
        killed_at = time.monotonic()
        runner.wait(30)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    _, living = psutil.wait_procs([p for p in seen.values() if alive(p)],
                                  timeout=max(GONE_WITHIN_S - (time.monotonic() - killed_at), 0))
    left = [p for p in living if alive(p)]
    for process in left:  # not to leave them to the next test; the assertion says it failed
        process.kill()
    assert not left, [(p.pid, command_line(p)) for p in left]
    assert folders and not [folder for folder in folders if folder.exists()]
    print(f"{len(seen)} processes of the run gone {time.monotonic() - killed_at:.1f} s "
          "after SIGKILL")


def test_certs_are_private_files_that_check_out_and_never_follow_a_link(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "certs"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (directory / "a.key").symlink_to(victim)  # planted before the keys are written
    assert main(["cluster", "certs", str(directory), "--hosts", "a,b"]) == 0
    assert victim.read_text() == "precious\n"
    names = {path.name for path in directory.iterdir()}
    assert names == {"ca.pem", "ca.key", "security.toml",
                     *(f"{n}.{kind}" for n in ("a", "b", "scheduler", "runner")
                       for kind in ("pem", "key"))}
    for path in directory.iterdir():
        assert not path.is_symlink()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for name in ("a", "b", "runner"):
        check_credentials(str(directory / "ca.pem"), str(directory / f"{name}.pem"),
                          str(directory / f"{name}.key"))
    capsys.readouterr()
    # The wrong key for a certificate: one line, exit 2, nothing tried.
    assert main(["run", "--cluster", "tls://127.0.0.1:1", "--server-host", "a",
                 "--client-hosts", "b", "--tls-ca", str(directory / "ca.pem"),
                 "--tls-cert", str(directory / "a.pem"), "--tls-key",
                 str(directory / "b.key")]) == 2
    err = capsys.readouterr().err
    assert "is not the key of certificate" in err and err.count("\n") == 1, err


def test_an_expired_certificate_is_one_line_and_exit_2(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    write_credentials(tmp_path, ["a"], days=1)
    ca_key, ca_cert = _load_ca(tmp_path)
    key, fresh = certs.make_party(ca_key, ca_cert, "runner", 1)
    now = datetime.datetime.now(datetime.UTC)
    expired = (x509.CertificateBuilder().subject_name(fresh.subject)
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=2))
               .not_valid_after(now - datetime.timedelta(days=1))
               .sign(ca_key, hashes.SHA256()))
    (tmp_path / "old.pem").write_text(certs._pem_cert(expired))
    (tmp_path / "old.key").write_text(certs._pem_key(key))
    security = tmp_path / "old.toml"
    security.write_text('ca = "ca.pem"\ncert = "old.pem"\nkey = "old.key"\n')
    assert main(["run", "--cluster", "tls://127.0.0.1:1", "--server-host", "a",
                 "--client-hosts", "b", "--security", str(security)]) == 2
    err = capsys.readouterr().err
    assert "certificate" in err and "expired on" in err and err.count("\n") == 1, err
    assert "Traceback" not in err


def _load_ca(directory: Path) -> tuple[object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return (serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None),
            x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes()))


def test_a_tls_scheduler_that_cannot_be_reached_is_one_line_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2.0)
    write_credentials(tmp_path, ["a", "b"], days=1)
    # Nothing listens on loopback's port 1.
    assert main(["run", "--cluster", "tls://127.0.0.1:1", "--server-host", "a",
                 "--client-hosts", "b", "--security", str(tmp_path / "security.toml")]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tls://127.0.0.1:1" in err
    assert "Traceback" not in err and err.count("\n") == 1, err


def test_a_scheduler_of_another_ca_is_one_line_and_exit_2(
        cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_credentials(tmp_path / "certs", HOSTS, days=1)  # a CA that is not the cluster's
    assert main(["run", "--cluster", cluster.local_cluster.scheduler_address,
                 "--security", str(tmp_path / "certs" / "security.toml"),
                 "--server-host", "server", "--client-hosts", "client1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "TLS handshake" in err and "CERTIFICATE_VERIFY_FAILED" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_certificate_of_another_ca_is_refused_before_anything_is_tried(
        tmp_path: Path) -> None:
    write_credentials(tmp_path / "ours", ["a"], days=1)
    write_credentials(tmp_path / "theirs", ["a"], days=1)
    with pytest.raises(CertificateError, match="is not signed by the CA in"):
        check_credentials(str(tmp_path / "ours" / "ca.pem"),
                          str(tmp_path / "theirs" / "runner.pem"),
                          str(tmp_path / "theirs" / "runner.key"))
