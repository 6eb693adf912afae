import ssl

import pytest

from airkafka_app.contract.kafka_connection import aiokafka_options, confluent_options, ssl_context
from airkafka_app.contract.settings import Settings


def settings_with(monkeypatch, **env: str) -> Settings:
    monkeypatch.setenv("AIRKAFKA_BROKER", "kafka://a:9092;kafka://b:9093")
    for name, value in env.items():
        monkeypatch.setenv(f"AIRKAFKA_{name}", value)
    return Settings()


def test_plaintext_by_default(monkeypatch):
    config = settings_with(monkeypatch)
    assert confluent_options(config) == {
        "bootstrap.servers": "a:9092,b:9093",
        "security.protocol": "PLAINTEXT",
        "socket.nagle.disable": True,
    }
    assert aiokafka_options(config) == {
        "bootstrap_servers": ["a:9092", "b:9093"],
        "security_protocol": "PLAINTEXT",
        "ssl_context": None,
    }


def test_sasl_scram_reaches_both_kinds_of_client(monkeypatch):
    config = settings_with(
        monkeypatch,
        SECURITY_PROTOCOL="sasl_plaintext",
        SASL_MECHANISM="scram-sha-512",
        SASL_USERNAME="alice",
        SASL_PASSWORD="s3cret",
    )
    assert confluent_options(config) == {
        "bootstrap.servers": "a:9092,b:9093",
        "security.protocol": "SASL_PLAINTEXT",
        "socket.nagle.disable": True,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "s3cret",
    }
    assert aiokafka_options(config) == {
        "bootstrap_servers": ["a:9092", "b:9093"],
        "security_protocol": "SASL_PLAINTEXT",
        "ssl_context": None,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(config)


def test_sasl_ssl_names_only_the_files_given(monkeypatch, tmp_path):
    config = settings_with(monkeypatch, SECURITY_PROTOCOL="SASL_SSL", SASL_USERNAME="key", SASL_PASSWORD="secret")
    options = confluent_options(config)
    assert options["security.protocol"] == "SASL_SSL" and options["sasl.mechanism"] == "PLAIN"
    assert not any(name.startswith("ssl.") for name in options)  # librdkafka then uses the system CAs
    context = aiokafka_options(config)["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED


def test_a_missing_ca_file_fails_when_the_context_is_made(monkeypatch, tmp_path):
    config = settings_with(monkeypatch, SECURITY_PROTOCOL="SSL", SSL_CAFILE=str(tmp_path / "none.pem"))
    assert confluent_options(config)["ssl.ca.location"] == str(tmp_path / "none.pem")
    with pytest.raises(FileNotFoundError):
        ssl_context(config)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SECURITY_PROTOCOL": "SASL"}, "AIRKAFKA_SECURITY_PROTOCOL is 'SASL'"),
        (
            {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "GSSAPI", "SASL_USERNAME": "u", "SASL_PASSWORD": "p"},
            "AIRKAFKA_SASL_MECHANISM is 'GSSAPI'",
        ),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_USERNAME": "u"}, "needs AIRKAFKA_SASL_USERNAME and"),
    ],
)
def test_an_incomplete_security_setup_is_refused_with_the_variable_named(monkeypatch, env, message):
    with pytest.raises(ValueError, match=message):
        settings_with(monkeypatch, **env)
