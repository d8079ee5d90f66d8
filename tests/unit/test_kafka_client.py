"""Kafka client settings read from Java client-properties files (clickfan/kafka_client.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clickfan import kafka_client
from clickfan.kafka_client import KafkaConfigError, config_from_text, parse_properties
from clickfan.settings import Settings

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


def _ca(tmp_path: Path) -> Path:
    from clickfan.compose.native import pki

    return pki.ensure_ca(Settings(home=tmp_path))


def test_java_properties_syntax() -> None:
    text = (
        "# comment\n! also a comment\n"
        "a=1\n"
        "b : 2\n"
        "c 3\n"
        "  d   =   spaced value  \n"
        "e=first \\\n    second\n"
        "f=tab\\there\\u0041\n"
        "key\\=with\\:seps=v\n"
        "g==x\n"
        "empty=\n"
    )
    entries = {k: v for _, k, v in parse_properties(text)}
    assert entries == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": "spaced value  ",
        "e": "first second",
        "f": "tab\thereA",
        "key=with:seps": "v",
        "g": "=x",
        "empty": "",
    }


def test_sasl_ssl_scram_maps_to_both_clients(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    text = (
        "bootstrap.servers=k1:9093,k2:9093\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={SCRAM} required \\\n  username="producer" password="s3;cr=t";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\n"
    )
    config = config_from_text(text, "client.properties")
    assert config.bootstrap_servers == "k1:9093,k2:9093"
    conf = config.confluent("k1:9093", {"acks": "all"})
    assert conf["security.protocol"] == "sasl_ssl"
    assert (conf["sasl.mechanism"], conf["sasl.username"]) == ("SCRAM-SHA-512", "producer")
    assert conf["sasl.password"] == "s3;cr=t"
    assert conf["ssl.ca.location"] == str(ca)
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert conf["acks"] == "all"
    kwargs = config.aiokafka()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_plain_password"] == "s3;cr=t"
    assert kwargs["ssl_context"].check_hostname
    credentials = config.faust_credentials()
    assert credentials.mechanism.value == "SCRAM-SHA-512"


def test_secrets_never_shown(tmp_path: Path) -> None:
    text = (
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        f"sasl.jaas.config={PLAIN} required username=u password=hunter2;\n"
    )
    config = config_from_text(text, "f")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.redacted())
    assert config.redacted()["password"] == "[hidden]"


def test_mutual_tls_keystore_and_relative_paths(tmp_path: Path) -> None:
    from clickfan.compose.native import pki

    settings = Settings(home=tmp_path)
    paths = pki.issue_certificate(settings, "client", ["client"])
    (tmp_path / "secure" / "c.properties").write_text(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=ca.pem\n"
        f"ssl.keystore.type=PEM\nssl.keystore.location={paths.bundle.name}\n"
        "ssl.endpoint.identification.algorithm=\n"
    )
    config = kafka_client.read_config(tmp_path / "secure" / "c.properties")
    conf = config.confluent("b:1")
    assert conf["ssl.key.location"] == conf["ssl.certificate.location"] == str(paths.bundle)
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert config.ssl_context() is not None


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("linger.ms=5\n", "line 1: unsupported key 'linger.ms'"),
        ("security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\n", "'GSSAPI' is not supported"),
        ("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n", "sasl.jaas.config: missing"),
        (
            f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config={SCRAM} "
            'required username="a" password="b";\n',
            "does not do PLAIN",
        ),
        (
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
            f'sasl.jaas.config={PLAIN} required username="a";\n',
            'needs username=".." and password=".."',
        ),
        ("security.protocol=SSL\nssl.truststore.location=/x.jks\n", "only PEM"),
        (
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=/no\n",
            "no such",
        ),
        ("security.protocol=TLS\n", "expected one of PLAINTEXT"),
        ("bootstrap.servers=nohost\n", "host:port"),
    ],
)
def test_unusable_files_are_one_line(text: str, names: str) -> None:
    with pytest.raises(KafkaConfigError) as raised:
        config_from_text(text, "client.properties")
    message = str(raised.value)
    assert names in message and "\n" not in message
    assert raised.value.exit_code == 2


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError, match="cannot read the Kafka client config"):
        kafka_client.read_config(tmp_path / "nope.properties")


def test_secure_home_defaults_to_the_roles_file(tmp_path: Path) -> None:
    plain = Settings(home=tmp_path)
    assert kafka_client.for_role(plain, "producer") is kafka_client.PLAINTEXT
    secure = Settings(home=tmp_path, secure=True)
    with pytest.raises(KafkaConfigError, match="clickfan up --secure"):
        kafka_client.for_role(secure, "producer")
    given_file = tmp_path / "mine.properties"
    given_file.write_text("bootstrap.servers=h:1\n")
    chosen = Settings(home=tmp_path, secure=True, kafka_config=str(given_file))
    assert kafka_client.for_role(chosen, "producer").bootstrap_servers == "h:1"


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("_AUTHENTICATION", "SASL authentication error: invalid credentials", "authentication"),
        ("TOPIC_AUTHORIZATION_FAILED", "Broker: Topic authorization failed", "ACLs"),
        ("GROUP_AUTHORIZATION_FAILED", "Broker: Group authorization failed", "ACLs"),
        ("GroupAuthorizationFailedError", "[Error 30]", "ACLs"),
        (
            "_SSL",
            "SSL handshake failed: certificate verify failed, verify that ssl.ca.location is "
            "correctly configured",
            "TLS",
        ),
    ],
)
def test_refusals(name: str, text: str, says: str) -> None:
    reason = kafka_client.refusal(name, text)
    assert reason is not None and says in reason and "verify that ssl.ca" not in reason


@pytest.mark.parametrize("name", ["_TRANSPORT", "_ALL_BROKERS_DOWN", "NOT_LEADER_FOR_PARTITION"])
def test_not_refusals(name: str) -> None:
    assert kafka_client.refusal(name, "Local: Broker transport failure") is None


def test_connection_hints() -> None:
    closed_first = (
        "b:1/bootstrap: Disconnected: connection closed (after 0ms in state APIVERSION_QUERY)"
    )
    closed_later = (
        "ssl://b:1/bootstrap: Disconnected: SSL connection closed (after 2ms in state UP)"
    )
    assert "SSL or SASL_SSL" in (kafka_client.connection_hint(closed_first, "PLAINTEXT") or "")
    assert "SASL" in (kafka_client.connection_hint(closed_later, "SSL") or "")
    assert kafka_client.connection_hint(closed_later, "SASL_SSL") is None
    assert kafka_client.connection_hint("Connected", "PLAINTEXT") is None


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_file_text_is_read_or_refused_in_one_line(text: str) -> None:
    try:
        config = config_from_text(text, "client.properties")
    except KafkaConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert config.security_protocol in kafka_client.PROTOCOLS


_keys = st.sampled_from([*kafka_client.KNOWN_KEYS, "x"])
_values = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(
        [
            *kafka_client.PROTOCOLS,
            *kafka_client.MECHANISMS,
            "PEM",
            "JKS",
            "https",
            "~nobody-here/x",
            "/etc/hostname",
            "a\x00b",
            f'{SCRAM} required username="u" password="p";',
            f"{PLAIN} required username=u password=p",
            "h:1,h:2",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_keys, _values), max_size=8), st.sampled_from(["=", ":", " ", " = "]))
def test_any_known_keys_never_traceback(pairs: list[tuple[str, str]], sep: str) -> None:
    text = "".join(f"{k}{sep}{v}\n" for k, v in pairs)
    try:
        config_from_text(text, "client.properties")
    except KafkaConfigError as exc:
        assert "\n" not in str(exc)
