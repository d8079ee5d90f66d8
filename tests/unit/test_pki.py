"""The secure profile's local CA: private files, reuse while valid, broken ones for tests."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from cryptography import x509

from clickfan.compose.native import pki
from clickfan.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_files_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    ca = pki.ensure_ca(settings)
    first = pki.issue_certificate(settings, "kafka", ["127.0.0.1", "localhost"])
    issued = first.cert.read_bytes()
    again = pki.issue_certificate(settings, "kafka", ["localhost"])
    assert again.cert.read_bytes() == issued
    assert pki.ensure_ca(settings).read_bytes() == ca.read_bytes()
    assert _mode(tmp_path / "secure") == 0o700
    assert {_mode(p) for p in (tmp_path / "secure").iterdir()} == {0o600}
    _load(first.cert).verify_directly_issued_by(_load(ca))
    bundle = first.bundle.read_text()
    assert bundle.index("PRIVATE KEY") < bundle.index("CERTIFICATE")


def test_new_host_or_new_ca_issues_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = pki.issue_certificate(settings, "kafka", ["127.0.0.1"]).cert.read_bytes()
    wider = pki.issue_certificate(settings, "kafka", ["127.0.0.1", "broker.example"])
    assert wider.cert.read_bytes() != first
    san = _load(wider.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "broker.example" in san.value.get_values_for_type(x509.DNSName)
    old_ca = (tmp_path / "secure" / "ca.pem").read_bytes()
    (tmp_path / "secure" / "ca-key.pem").write_text("damaged")
    renewed = pki.issue_certificate(settings, "kafka", ["127.0.0.1"])
    new_ca = _load(tmp_path / "secure" / "ca.pem")
    assert new_ca.public_bytes(pki.serialization.Encoding.PEM) != old_ca
    _load(renewed.cert).verify_directly_issued_by(new_ca)


def test_widened_folder_is_narrowed_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    pki.ensure_ca(settings)
    (tmp_path / "secure").chmod(0o755)
    pki.ensure_ca(settings)
    assert _mode(tmp_path / "secure") == 0o700


def test_broken_certificates_for_refusal_tests(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    ca = _load(pki.ensure_ca(settings))
    expired = pki.broken_certificate(tmp_path / "bad", settings, "old", ["127.0.0.1"], expired=True)
    assert _load(expired.cert).not_valid_after_utc < dt.datetime.now(dt.UTC)
    _load(expired.cert).verify_directly_issued_by(ca)
    stranger = pki.broken_certificate(
        tmp_path / "bad", settings, "stranger", ["127.0.0.1"], unknown_ca=True
    )
    assert _load(stranger.cert).issuer != ca.subject
    assert not (tmp_path / "secure" / "old.pem").exists()
