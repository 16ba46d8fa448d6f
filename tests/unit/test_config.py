"""Settings come from the file, then the environment, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from edml.core.config import ConfigError, load_settings


def test_defaults_without_file(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "none.toml", env={})
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.topics.models == "models"


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "edml.toml"
    f.write_text('bootstrap_servers = "a:1"\npartitions = 8\n[topics]\ntrips = "rides"\n'
                 '[kafka]\n"security.protocol" = "SASL_SSL"\n')
    s = load_settings(f, env={"EDML_PARTITIONS": "3", "EDML_TOPIC_MODELS": "m",
                              "EDML_KAFKA_SASL_MECHANISM": "PLAIN"})
    assert (s.bootstrap_servers, s.partitions, s.topics.trips, s.topics.models) == ("a:1", 3, "rides", "m")
    assert s.kafka == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert s.with_overrides(bootstrap_servers="b:2", partitions=None).bootstrap_servers == "b:2"


@pytest.mark.parametrize("text, fragment", [
    ("partitions = 'many'", "partitions"),
    ("[topics]\nbogus = 'x'", "unknown topic role"),
    ("nonsense = 1", "unknown setting"),
    ("not toml [", "not valid TOML"),
])
def test_bad_config_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "edml.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(f, env={})


@pytest.mark.parametrize("process_id, addresses, fragment", [
    (0, None, "go together"),
    (None, "a:1;b:2", "go together"),
    (2, "a:1;b:2", "not an index"),
])
def test_cluster_flags_are_checked(process_id: int | None, addresses: str | None, fragment: str) -> None:
    from edml.core.errors import OperatorError
    from edml.runtime.service import cluster_addresses

    with pytest.raises(OperatorError, match=fragment):
        cluster_addresses(process_id, addresses)
    assert cluster_addresses(1, "a:1;b:2") == ["a:1", "b:2"]
    assert cluster_addresses(None, None) is None


def test_state_dir_check_holds_when_processes_share_the_folder(tmp_path: Path) -> None:
    """Processes of one host start together on one state folder; none may fail the check."""
    from concurrent.futures import ProcessPoolExecutor

    state = tmp_path / "state"
    with ProcessPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_check_many, [state] * 4))
    assert results == [None] * 4
    assert list(state.iterdir()) == []  # no probe left behind


def _check_many(path: Path) -> None:
    from edml.runtime.service import state_dir_writable

    for _ in range(300):
        state_dir_writable(path)
