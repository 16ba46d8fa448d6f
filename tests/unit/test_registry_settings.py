"""The [schema_registry] settings table, its environment overrides, and the client it configures."""

from __future__ import annotations

from pathlib import Path

import pytest
from edml.schemas.confluent import client_config, make_client
from edml.schemas.serde import serde_for
from edml.schemas.wire import topic_serdes
from edml.trainer.records import trip_serde

from edml.core.config import ConfigError, SchemaRegistrySettings, Settings, load_settings


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "edml.toml"
    path.write_text(text)
    return str(path)


def test_no_registry_by_default_and_single_object_everywhere(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})
    assert settings.schema_registry_url == ""
    serdes = topic_serdes(settings)
    assert serdes.predictions is serde_for("Prediction")
    assert serdes.for_serde(serdes.topics.trips, trip_serde()) is trip_serde()
    assert serdes.for_topic(settings.topics.dead_letter) is serde_for("DeadLetter")


def test_table_then_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[schema_registry]\nurl = "https://file.example"\nbearer_token = "from-file"\n'
                           'timeout_s = 3\n')
    settings = load_settings(path, env={"EDML_SCHEMA_REGISTRY_URL": "https://env.example/apis/ccompat/v7",
                                        "EDML_SCHEMA_REGISTRY_BEARER_LOGICAL_CLUSTER": "lsrc-1"})
    r = settings.schema_registry
    assert (r.url, r.bearer_token, r.bearer_logical_cluster, r.timeout_s) == (
        "https://env.example/apis/ccompat/v7", "from-file", "lsrc-1", 3.0)
    # a top-level schema_registry_url (the older spelling) still works
    assert load_settings(write(tmp_path, 'schema_registry_url = "http://old"\n'), env={}).schema_registry_url \
        == "http://old"


@pytest.mark.parametrize(("text", "fragment"), [
    ('[schema_registry]\nurl = "registry:8081"\n', "is not an http(s):// URL"),
    ('[schema_registry]\nurll = "http://x"\n', "unknown [schema_registry] key(s) ['urll']"),
    ('[schema_registry]\nurl = "http://x"\nbearer_token = "t"\nbasic_auth_user_info = "k:s"\n', "set one of"),
    ('[schema_registry]\ntimeout_s = "soon"\n', "timeout_s has an invalid value"),
])
def test_mistakes_are_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        load_settings(write(tmp_path, text), env={})
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_secrets_stay_out_of_repr_and_errors(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={
        "EDML_SCHEMA_REGISTRY_URL": "https://KEY:SECRET1@registry.example",
        "EDML_SCHEMA_REGISTRY_BEARER_TOKEN": "SECRET2"})
    text = repr(settings)
    assert "SECRET1" not in text and "SECRET2" not in text
    assert "https://***@registry.example" in text and "auth=bearer" in text
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, '[schema_registry]\ntimeout_s = "SECRET3"\n'), env={})
    assert "SECRET3" not in str(e.value)


def test_client_configuration_per_authentication(tmp_path: Path) -> None:
    def conf(**registry: str) -> dict:
        env = {f"EDML_SCHEMA_REGISTRY_{k.upper()}": v for k, v in registry.items()}
        return client_config(load_settings(write(tmp_path, ""), env={"EDML_SCHEMA_REGISTRY_URL": "https://r", **env})
                             .schema_registry)

    assert conf(basic_auth_user_info="key:secret")["basic.auth.user.info"] == "key:secret"
    bearer = conf(bearer_token="tok")
    fields = bearer["bearer.auth.custom.provider.function"](bearer["bearer.auth.custom.provider.config"])
    assert fields["bearer.auth.token"] == "tok" and "bearer.auth.identity.pool.id" not in fields


@pytest.mark.parametrize("auth", [{}, {"basic_auth_user_info": "key:secret"}, {"bearer_token": "tok"},
                                  {"bearer_token": "tok", "bearer_logical_cluster": "lsrc-1"}])
def test_confluent_kafka_accepts_every_configuration_edml_builds(auth: dict[str, str]) -> None:
    make_client(SchemaRegistrySettings(url="https://registry.example", **auth))  # raises OperatorError if not


def test_registry_commands_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    def edml(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edml.cli", "registry", *args, "--home", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)

    status = edml("status")
    assert (status.returncode, status.stdout.strip()) == (1, "schema registry is not running")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = edml("up", "--port", str(taken.getsockname()[1]))
    assert up.returncode == 2 and up.stderr.strip().count("\n") == 0 and "is taken by another program" in up.stderr


def test_archives_are_read_in_either_format() -> None:
    """Replay reads single-object archives without a registry, and says how to read a registry archive."""
    from edml.schemas.serde import DecodeError
    from edml.schemas.wire import archive_serdes
    from edml.trainer.generator import generate_trips

    trip = generate_trips(1, seed=2)[0].pickup
    schema = trip_serde().schema_json
    serdes = archive_serdes(Settings(), {Settings().topics.trips: schema})
    trips = serdes.for_schema(serdes.topics.trips, schema)
    assert trips.decode(trip_serde().encode(trip)) == trip_serde().to_dict(trip)
    framed = b"\x00\x00\x00\x00\x07" + trip_serde().encode_body(trip)
    with pytest.raises(DecodeError, match="set \\[schema_registry\\] url to read it") as e:
        trips.decode(framed)
    assert e.value.kind == "bad-magic"
