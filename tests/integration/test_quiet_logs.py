"""What an operator sees at start: no native start-up chatter, even on a brand-new broker.

A broker of its own: librdkafka's ``Coordinator load in progress`` shows only on the first
idempotent producer of a new broker, which the session broker has long served.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edml.kafka.local_broker import LocalBroker
from tests.helpers.logs import noise_in, plain_env
from tests.helpers.ports import free_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EDML = [sys.executable, "-m", "edml.cli"]


@pytest.fixture
def new_broker(tmp_path: Path) -> Iterator[str]:
    port = free_ports(2)
    broker = LocalBroker(tmp_path / "kafka", port=port, controller_port=port + 1)
    broker.up()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.down()


def test_first_publish_on_a_new_broker_prints_only_its_result(
    new_broker: str, trained_model_dir: Path, tmp_path: Path
) -> None:
    env = plain_env(EDML_BOOTSTRAP_SERVERS=new_broker, EDML_STATE_DIR=str(tmp_path / "state"))
    env.pop("EDML_CONFIG", None)
    env.pop("EDML_MODEL_SIGNING_KEY", None)
    created = subprocess.run([*EDML, "topics", "create"], env=env, capture_output=True, text=True, timeout=120,
                             cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    done = subprocess.run([*EDML, "publish", "--model-dir", str(trained_model_dir)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert noise_in(done.stderr) == [], done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("published trip-duration "), done.stderr
