"""A local certificate authority for the secure profile (`clickfan up --secure`).

Everything lives under ``<home>/secure/`` (folder 0700, files 0600): ``ca.pem``
(the CA certificate, what clients trust), ``ca-key.pem`` beside it, and one
certificate per name (``<name>.pem``, ``<name>-key.pem`` and ``<name>-bundle.pem``:
key then certificate, the single-file PEM keystore Kafka and Elasticsearch read).

Idempotent: an existing CA is reused while valid, and a certificate is reused
while it is valid, signed by the current CA and covers the hosts asked for; a
fresh one is issued otherwise. `broken_certificate` makes the broken ones the
refusal tests need (expired, or signed by a CA nobody trusts), never in
``<home>/secure`` itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clickfan.errors import ClickfanError
from clickfan.settings import Settings

CA_DAYS = 3650
CERT_DAYS = 825  # what browsers and most TLS stacks still accept for a leaf
RENEW_BEFORE = dt.timedelta(days=7)  # a certificate this close to its end is issued again


@dataclass(frozen=True)
class CertPaths:
    cert: Path  # the certificate (PEM)
    key: Path  # its private key (PEM, PKCS#8, unencrypted, 0600)
    bundle: Path  # key then certificate then the CA: a PEM keystore in one file


def secure_dir(settings: Settings) -> Path:
    """<home>/secure, created 0700 (and set back to 0700 if it was widened)."""
    path = settings.home / "secure"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_secret(path: Path, data: bytes | str) -> None:
    """Write a file readable only by its owner; it is never world-readable, not even briefly."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ca_paths(settings: Settings) -> tuple[Path, Path]:
    folder = secure_dir(settings)
    return folder / "ca.pem", folder / "ca-key.pem"


def ensure_ca(settings: Settings) -> Path:
    """The local CA's certificate (made the first time, and again once expired)."""
    cert_path, key_path = ca_paths(settings)
    if _load_ca(cert_path, key_path) is None:
        cert, key = _new_ca("clickfan local CA")
        write_secret(key_path, _key_pem(key))
        write_secret(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def issue_certificate(settings: Settings, name: str, hosts: list[str]) -> CertPaths:
    """A certificate for ``name`` (server and client use), valid for ``hosts``, from the CA."""
    ensure_ca(settings)
    cert_path, key_path = ca_paths(settings)
    loaded = _load_ca(cert_path, key_path)
    if loaded is None:  # just written by ensure_ca: only a broken disk gets here
        raise ClickfanError(f"cannot read the local CA at {cert_path}")
    ca_cert, ca_key = loaded
    paths = _paths(secure_dir(settings), name)
    if _reusable(paths, ca_cert, hosts):
        return paths
    _write(paths, *_issue(name, hosts, ca_cert, ca_key, CERT_DAYS), ca_cert)
    return paths


def broken_certificate(
    folder: Path,
    settings: Settings,
    name: str,
    hosts: list[str],
    *,
    expired: bool = False,
    unknown_ca: bool = False,
) -> CertPaths:
    """A deliberately bad certificate, for refusal tests: expired, or from a CA not trusted.

    Written into ``folder`` (not <home>/secure) so it can never replace a good one.
    """
    if unknown_ca:
        ca_cert, ca_key = _new_ca("clickfan unknown CA")
    else:
        ensure_ca(settings)
        loaded = _load_ca(*ca_paths(settings))
        if loaded is None:
            raise ClickfanError("cannot read the local CA")
        ca_cert, ca_key = loaded
    now = dt.datetime.now(dt.UTC)
    window = (now - dt.timedelta(days=30), now - dt.timedelta(days=1)) if expired else None
    cert, key = _issue(name, hosts, ca_cert, ca_key, CERT_DAYS, window)
    folder.mkdir(parents=True, exist_ok=True)
    paths = _paths(folder, name)
    _write(paths, cert, key, ca_cert)
    return paths


# ------------------------------------------------------------------ internals


def _paths(folder: Path, name: str) -> CertPaths:
    return CertPaths(
        folder / f"{name}.pem", folder / f"{name}-key.pem", folder / f"{name}-bundle.pem"
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,  # the only unencrypted form Kafka's PEM keystore reads
        serialization.NoEncryption(),
    )


def _write(
    paths: CertPaths, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> None:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    write_secret(paths.key, _key_pem(key))
    write_secret(paths.cert, cert_pem)
    write_secret(paths.bundle, _key_pem(key) + cert_pem + ca_pem)


def _still_valid(cert: x509.Certificate) -> bool:
    now = dt.datetime.now(dt.UTC)
    return cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc


def _load_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _still_valid(cert):
        return None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    return cert, key


def _reusable(paths: CertPaths, ca: x509.Certificate, hosts: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
        paths.bundle.stat()
    except (OSError, ValueError, TypeError):
        return False
    if not _still_valid(cert) or cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    covered = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    covered |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= covered


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clickfan"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _issue(
    name: str,
    hosts: list[str],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not hosts:
        raise ClickfanError(f"a certificate for {name} needs at least one host name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    begin, end = window or (now - dt.timedelta(minutes=5), now + dt.timedelta(days=days))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(begin)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key
