"""Certificates for a run across hosts: a CA, one certificate per host, and their checks.

The cluster launcher talks to Dask over mutual TLS: every party (scheduler,
each host's worker, the runner) shows a certificate signed by the run's CA,
and refuses a peer that does not. A host is the one its certificate names
(subject CN and DNS subject alternative name): the runner checks the name
in the certificate a worker presents against the host it expects there,
never the name the worker chose for itself.

``iobench cluster certs DIR --hosts a,b,c`` makes a CA and the certificates
of hosts ``a``, ``b``, ``c``, of the scheduler and of the runner, for a
trial; :func:`memory_credentials` makes the same in memory for
``--cluster local``. :func:`check_credentials` turns a missing, unreadable,
expired or wrongly signed certificate into one line (exit 2) before any
connection is tried. ``cryptography`` is imported only here, and only when
needed.
"""

from __future__ import annotations

import datetime
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench.common.errors import UsageError
from iobench.common.files import PRIVATE_MODE, atomic_write, make_dir

# A trial's certificates: long enough for a series of runs, short enough that a
# copy left somewhere stops working on its own.
DEFAULT_DAYS = 30
MAX_DAYS = 3650
# ``--cluster local``'s credentials live only as long as the run.
LOCAL_DAYS = 1
# A clock a little behind the one that signed must not find a new certificate not yet valid.
BACKDATE = datetime.timedelta(minutes=5)
# The names of the two parties that are not hosts.
SCHEDULER = "scheduler"
RUNNER = "runner"
CA = "ca"
SECURITY_FILE = "security.toml"
# A host name: what a Dask worker's --name and a DNS label allow.
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")
EC_CURVE = "secp256r1"  # fast to make and to check, and every TLS library speaks it


class CertificateError(UsageError):
    """A certificate or key that is missing, unreadable, expired, or not the run's."""


@dataclass(frozen=True)
class Credentials:
    """The run's CA and one party's certificate and key, each a path or PEM text."""

    ca: str
    cert: str
    key: str

    def security(self, role: str) -> Any:
        """A Dask Security that requires TLS and shows these credentials as ``role``
        ("client", "scheduler" or "worker")."""
        from distributed.security import Security

        return Security(require_encryption=True, tls_ca_file=self.ca,
                        **{f"tls_{role}_cert": self.cert, f"tls_{role}_key": self.key})


def _crypto() -> Any:
    try:
        from cryptography import x509
    except ImportError as exc:
        raise UsageError(f"TLS certificates need the cryptography package: pip install "
                         f"'iobench[cluster]' ({exc})") from None
    return x509


def _name(x509: Any, common_name: str) -> Any:
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def make_ca(days: int) -> tuple[Any, Any]:
    """A new CA: its private key and self-signed certificate."""
    x509 = _crypto()
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    name = _name(x509, "iobench cluster CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_party(ca_key: Any, ca_cert: Any, name: str, days: int) -> tuple[Any, Any]:
    """A key and a certificate naming ``name`` (CN and DNS name), signed by the CA, good
    as a TLS server and as a client (a Dask worker is both)."""
    x509 = _crypto()
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    end = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (x509.CertificateBuilder().subject_name(_name(x509, name))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def check_hosts(hosts: list[str]) -> list[str]:
    """The host names, checked: distinct, each a valid name, none reserved."""
    for host in hosts:
        if not HOST_NAME.fullmatch(host):
            raise UsageError(f"bad host name {host!r}: letters, digits, '.' and '-', at most 63")
        if host in (CA, SCHEDULER, RUNNER):
            raise UsageError(f"host name {host!r} is reserved for the {host}'s own certificate")
    if len(set(hosts)) != len(hosts) or not hosts:
        raise UsageError("--hosts must name one or more distinct hosts")
    return hosts


def memory_credentials(hosts: list[str], days: int = LOCAL_DAYS) -> dict[str, Credentials]:
    """Credentials in memory (PEM text) for every host, the scheduler and the runner."""
    ca_key, ca_cert = make_ca(days)
    ca = _pem_cert(ca_cert)
    credentials = {}
    for name in [*dict.fromkeys(hosts), SCHEDULER, RUNNER]:
        key, cert = make_party(ca_key, ca_cert, name, days)
        credentials[name] = Credentials(ca, _pem_cert(cert), _pem_key(key))
    return credentials


def write_credentials(directory: Path, hosts: list[str], days: int) -> list[Path]:
    """``ca.pem`` (and its key), ``NAME.pem``/``NAME.key`` for every host, the scheduler
    and the runner, and the runner's ``security.toml``; every file 0600, none written
    through a symbolic link. Returns the paths written."""
    check_hosts(hosts)
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"bad --days {days}: must be 1-{MAX_DAYS}")
    make_dir(directory, mode=0o700)
    ca_key, ca_cert = make_ca(days)
    written = [atomic_write(directory / f"{CA}.pem", _pem_cert(ca_cert), PRIVATE_MODE, False),
               atomic_write(directory / f"{CA}.key", _pem_key(ca_key), PRIVATE_MODE, False)]
    for name in [*hosts, SCHEDULER, RUNNER]:
        key, cert = make_party(ca_key, ca_cert, name, days)
        written += [atomic_write(directory / f"{name}.pem", _pem_cert(cert), PRIVATE_MODE, False),
                    atomic_write(directory / f"{name}.key", _pem_key(key), PRIVATE_MODE, False)]
    security = (f'# iobench run --cluster tls://SCHEDULER:8786 --security {SECURITY_FILE}\n'
                f'ca = "{CA}.pem"\ncert = "{RUNNER}.pem"\nkey = "{RUNNER}.key"\n')
    written.append(atomic_write(directory / SECURITY_FILE, security, PRIVATE_MODE, False))
    return written


def load_security_file(path: Path) -> tuple[str, str, str]:
    """``ca``, ``cert`` and ``key`` of a security file, relative to its folder."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CertificateError(f"--security {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CertificateError(f"--security {path}: cannot read it ({exc})") from None
    unknown = sorted(set(raw) - {"ca", "cert", "key"})
    missing = [k for k in ("ca", "cert", "key") if not isinstance(raw.get(k), str)]
    if unknown or missing:
        wrong = f"unknown {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise CertificateError(f"--security {path}: needs ca, cert and key (file names); "
                               f"{wrong}")
    ca, cert, key = (str(path.parent / raw[k]) for k in ("ca", "cert", "key"))
    return ca, cert, key


def _read_pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise CertificateError(f"{what} {path}: cannot read it ({exc.strerror})") from None


def check_credentials(ca_path: str, cert_path: str, key_path: str) -> Credentials:
    """The credentials, checked: each file there and readable, the certificate signed
    by the CA, valid now, and matching its key; CertificateError in one line if not."""
    x509 = _crypto()
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    certificates = {}
    for path, what in ((ca_path, "CA certificate"), (cert_path, "certificate")):
        try:
            certificates[what] = x509.load_pem_x509_certificate(_read_pem(path, what))
        except ValueError:
            raise CertificateError(f"{what} {path} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(_read_pem(key_path, "key"), password=None)
    except (ValueError, TypeError):
        raise CertificateError(f"key {key_path} is not an unencrypted PEM private key") from None
    now = datetime.datetime.now(datetime.UTC)
    for (what, cert), path in zip(certificates.items(), (ca_path, cert_path), strict=True):
        if cert.not_valid_after_utc < now:
            raise CertificateError(f"{what} {path} expired on "
                                   f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        if cert.not_valid_before_utc > now:
            raise CertificateError(f"{what} {path} is not valid before "
                                   f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    try:
        certificates["certificate"].verify_directly_issued_by(certificates["CA certificate"])
    except (InvalidSignature, ValueError, TypeError) as exc:  # another issuer, or key kind
        raise CertificateError(f"certificate {cert_path} is not signed by the CA in {ca_path} "
                               f"({type(exc).__name__})") from None
    if certificates["certificate"].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CertificateError(f"key {key_path} is not the key of certificate {cert_path}")
    return Credentials(ca_path, cert_path, key_path)


def certificate_names(peercert: dict[str, Any]) -> set[str]:
    """The names a peer certificate (``ssl.SSLSocket.getpeercert()``) gives its holder:
    its DNS subject alternative names and its common name."""
    names = {value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"}
    for rdn in peercert.get("subject", ()):
        names.update(value for key, value in rdn if key == "commonName")
    return names


def add_cluster_arguments(parser: Any) -> None:
    sub = parser.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    certs = sub.add_parser("certs", help="make a CA and TLS certificates for a trial cluster",
                           description="Make a CA, a certificate and key for every host, the "
                                       "scheduler and the runner, and the runner's "
                                       f"{SECURITY_FILE}, in DIR (files 0600). See "
                                       "docs/security.md.")
    certs.add_argument("directory", type=Path, metavar="DIR")
    certs.add_argument("--hosts", required=True, metavar="A,B,...",
                       help="the hosts' names, as each worker's --name and as the runner's "
                            "--server-host/--client-hosts name them")
    certs.add_argument("--days", type=int, default=DEFAULT_DAYS,
                       help=f"how long the certificates are valid (default {DEFAULT_DAYS})")


def cmd_cluster(args: Any) -> int:
    hosts = [host.strip() for host in args.hosts.split(",")]
    os.umask(0o077)  # nothing of a CA's is for other users, also while being written
    for path in write_credentials(args.directory, hosts, args.days):
        print(path)
    return 0
