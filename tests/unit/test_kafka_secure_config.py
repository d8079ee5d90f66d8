"""The secure profile's broker configuration and client files (no broker started here)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from clickfan import kafka_client
from clickfan.compose.native.services import kafka
from clickfan.settings import Settings


def _broker(settings: Settings) -> kafka.KafkaBroker:
    return kafka.kafka_brokers(settings)[0]


def test_plaintext_by_default(tmp_path: Path) -> None:
    props = _broker(Settings(home=tmp_path)).server_properties()
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert "authorizer.class.name" not in props
    assert not (tmp_path / "secure").exists()


def test_secure_listeners_authorizer_and_tls(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, secure=True)
    props = _broker(settings).server_properties()
    assert str(props["listeners"]).startswith("SASL_SSL://127.0.0.1:9092,CONTROLLER://")
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert Path(str(props["ssl.keystore.location"])).is_file()


def test_passwords_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = kafka.kafka_passwords(settings)
    assert set(first) == set(kafka_client.ROLES)
    assert len(set(first.values())) == len(first)  # one each
    assert kafka.kafka_passwords(settings) == first
    path = tmp_path / "secure" / "kafka-passwords.json"
    assert json.loads(path.read_text()) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_client_files_read_back_as_each_user(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, secure=True)
    written = kafka.write_client_files(settings, "127.0.0.1:9092")
    passwords = kafka.kafka_passwords(settings)
    for user, path in written.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = kafka_client.for_role(settings, user)
        assert (config.username, config.password) == (user, passwords[user])
        assert config.security_protocol == "SASL_SSL"
        assert config.sasl_mechanism == "SCRAM-SHA-512"
        assert config.ca_file == str(tmp_path / "secure" / "ca.pem")


def test_argfile_quoting_round_trips_java_rules() -> None:
    quoted = kafka._argfile_quote('SCRAM-SHA-512=[name=a,password=p"q\\r]')
    assert quoted == '"SCRAM-SHA-512=[name=a,password=p\\"q\\\\r]"'
