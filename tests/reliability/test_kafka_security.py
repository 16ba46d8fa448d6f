"""Kafka security settings reach every client edml creates.

Each component that builds a Kafka client builds a real one here with SASL_SSL settings (the
client constructors are wrapped to record the config they get, then build the real client),
and every recorded config must carry the settings. A scan of the source then makes sure no
module builds a client any other way. (The broker-restart test runs the whole system against
a real SASL_SSL broker.)
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

import edml.kafka.clients as clients
import edml.kafka.source as source_module
from edml.core.config import Settings, load_settings
from tests.reliability.secure_broker import write_certificates

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["edml", "dataflows", "model_topic", "trainer", "schemas", "evaluation", "replay", "tools"]
CLIENT_CLASSES = {"Producer", "Consumer", "AdminClient", "KafkaSource", "KafkaSink", "SerializingProducer",
                  "DeserializingConsumer"}
# Where a client may be constructed directly, and why that is safe
ALLOWED = {
    ("edml/kafka/clients.py", "Producer"): "builds it from producer_config (settings.kafka included)",
    ("edml/kafka/clients.py", "Consumer"): "builds it from consumer_config",
    ("edml/kafka/clients.py", "AdminClient"): "builds it from base_config",
    ("edml/kafka/source.py", "Consumer"): "gets its config from consumer_config in build_part",
    ("edml/kafka/local_broker.py", "AdminClient"): "probes the local PLAINTEXT dev broker it started",
    ("evaluation/operators.py", "KafkaSource"): "add_config from base_config",
    ("evaluation/operators.py", "KafkaSink"): "add_config from producer_config",
}


@pytest.fixture
def secure(tmp_path: Path) -> Settings:
    """Settings for a SASL_SSL cluster nobody listens on (clients are built, never connected)."""
    ca, _ = write_certificates(tmp_path / "tls")
    env = {"EDML_CONFIG": str(tmp_path / "edml.toml"), "EDML_KAFKA_SASL_PASSWORD": "p"}
    (tmp_path / "edml.toml").write_text(f'''
bootstrap_servers = "127.0.0.1:1"
state_dir = "{tmp_path / 'state'}"
[kafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "u"
"ssl.ca.location" = "{ca}"
''')
    settings = load_settings(env=env)
    assert settings.kafka["sasl.password"] == "p", "EDML_KAFKA_SASL_PASSWORD -> sasl.password"
    return settings


def expected(settings: Settings) -> dict[str, str]:
    """What every client config must contain."""
    return {"bootstrap.servers": settings.bootstrap_servers, **settings.kafka}


class Recorder:
    """Wraps the client constructors: records (component, client kind, config), builds the real client."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.component = ""
        self.built: list[tuple[str, str, dict[str, Any]]] = []
        for module, name, real in ((clients, "Producer", Producer), (clients, "Consumer", Consumer),
                                   (clients, "AdminClient", AdminClient), (source_module, "Consumer", Consumer)):
            monkeypatch.setattr(module, name, self._wrap(name, real))

    def _wrap(self, kind: str, real: type) -> Callable[[dict], Any]:
        def build(config: dict) -> Any:
            self.built.append((self.component, kind, dict(config)))
            return real(config)

        return build

    def run(self, component: str, action: Callable[[], object]) -> None:
        """Run ``action`` as ``component``; a client that cannot reach the broker may raise, which is fine."""
        self.component = component
        try:
            action()
        except Exception:  # noqa: S110 - only the configs matter here
            pass


def build_every_client(settings: Settings, recorder: Recorder, tmp_path: Path) -> None:
    """Create every kind of client the project creates, as each component does."""
    from edml.model_topic.publisher import check_model_topic
    from edml.trainer.producing import produce_trips

    from edml.kafka.reading import read_to_end
    from edml.kafka.security import check_client_settings
    from edml.kafka.sink import KafkaMessageSink
    from edml.kafka.source import HeldKafkaSource
    from edml.kafka.topics import existing_topics
    from edml.scoring.model_store import ModelStore
    from edml.scoring.serving import ActiveModels
    from edml.scoring.status import StatusReporter
    from edml.scoring.subscriber import ModelSubscriber

    recorder.run("clients.make_producer", lambda: clients.make_producer(settings))
    recorder.run("clients.make_consumer", lambda: clients.make_consumer(settings, "g").close())
    recorder.run("clients.make_admin", lambda: clients.make_admin(settings))
    recorder.run("serve: start-up check", lambda: check_client_settings(settings))
    recorder.run("topics (create/list)", lambda: existing_topics(settings, timeout=0.2))
    recorder.run("read_to_end", lambda: read_to_end(settings, "t", timeout=0.2))
    recorder.run("publisher: model topic check", lambda: check_model_topic(settings, timeout=0.2))
    recorder.run("serve: trips source", lambda: HeldKafkaSource(settings, "t", gate=lambda: True)
                 .build_part("trips", "0", None).close())
    recorder.run("serve: predictions sink", lambda: KafkaMessageSink(settings).build("out", 0, 1).close())
    recorder.run("serve: model status reporter", lambda: StatusReporter(settings))

    def subscriber() -> None:
        sub = ModelSubscriber(settings, ActiveModels(), ModelStore(tmp_path / "model-store"), StatusReporter(settings),
                              workdir=tmp_path / "models")
        sub._stop.set()  # builds its consumer, finds it must stop, closes it
        sub._run()

    recorder.run("serve: model subscriber", subscriber)
    recorder.run("trip producer", lambda: produce_trips(settings, []))


def bytewax_connectors(settings: Settings, tmp_path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(step, kind, config) of every Bytewax Kafka connector in the evaluation dataflow."""
    from bytewax.connectors.kafka import KafkaSink, KafkaSource
    from edml.dataflows.evaluation import build_flow, drift_features
    from edml.evaluation.config import EvaluationConfig
    from edml.evaluation.drift import parse_reference
    from edml.evaluation.judged import judged_pipeline

    from edml.pipelines.bound import open_pipeline

    reference = parse_reference({"trip_distance_km": {"kind": "numeric", "edges": [0.0, 2.0, 50.0],
                                                      "fractions": [0.5, 0.5]}}, "test")
    bound = open_pipeline(None, settings)
    # the taxi pipeline reads its own Prediction.avsc without a model on the topic
    flow = build_flow(settings, EvaluationConfig(), judged_pipeline(bound, []), reference, drift_features(bound))
    found = []

    def walk(steps: list) -> None:
        for step in steps:
            connector = getattr(step, "source", None) or getattr(step, "sink", None)
            if isinstance(connector, KafkaSource | KafkaSink):
                config = {"bootstrap.servers": ",".join(connector._brokers), **connector._add_config}
                kind = "KafkaSource" if isinstance(connector, KafkaSource) else "KafkaSink"  # subclasses too
                found.append((step.step_id, kind, config))
            walk(step.substeps)

    walk(flow.substeps)
    return found


def test_security_settings_reach_every_client(secure: Settings, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(monkeypatch)
    build_every_client(secure, recorder, tmp_path)
    built = recorder.built + bytewax_connectors(secure, tmp_path)
    want = expected(secure)
    print()
    for component, kind, config in built:
        print(f"[kafka security] {component:36s} {kind:11s} {config.get('security.protocol')} "
              f"{config.get('sasl.mechanism')} user={config.get('sasl.username')} "
              f"password={'***' if config.get('sasl.password') else None} "
              f"ca={Path(config.get('ssl.ca.location', '-')).name}")
    missing = [(component, kind, {k: v for k, v in want.items() if config.get(k) != v})
               for component, kind, config in built if any(config.get(k) != v for k, v in want.items())]
    assert not missing, missing
    components = {c for c, _, _ in recorder.built}
    assert components >= {"clients.make_producer", "clients.make_consumer", "clients.make_admin",
                          "serve: start-up check", "topics (create/list)", "read_to_end",
                          "publisher: model topic check", "serve: trips source", "serve: predictions sink",
                          "serve: model status reporter", "serve: model subscriber", "trip producer"}, components
    kinds = {kind for _, kind, _ in built}
    assert kinds == {"Producer", "Consumer", "AdminClient", "KafkaSource", "KafkaSink"}
    print(f"[kafka security] {len(built)} client configs, all with {sorted(want)}")


def client_constructions() -> list[tuple[str, int, str, ast.Call]]:
    """(file, line, class, call) of every direct client construction in the project's packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) \
                        else ""
                    if name in CLIENT_CLASSES:
                        found.append((path.relative_to(ROOT).as_posix(), node.lineno, name, node))
    return found


def test_no_module_builds_a_kafka_client_around_the_settings() -> None:
    bypasses = []
    constructions = client_constructions()
    assert len(constructions) >= 5, "the scan finds the constructions it allows"
    for file, line, name, call in constructions:
        if (file, name) not in ALLOWED:
            bypasses.append(f"{file}:{line} builds {name} directly: use edml.kafka.clients (make_producer, "
                            "make_consumer, make_admin) so the [kafka] security settings reach it")
        elif name in ("KafkaSource", "KafkaSink") and not any(k.arg == "add_config" for k in call.keywords):
            bypasses.append(f"{file}:{line} builds {name} without add_config from edml.kafka.clients")
    print(f"\n[kafka security] direct client constructions: {len(constructions)}, all in "
          f"{sorted({f for f, _ in ALLOWED})}")
    assert not bypasses, "\n".join(bypasses)


def test_env_overrides_the_config_file_for_client_properties(tmp_path: Path) -> None:
    (tmp_path / "edml.toml").write_text('[kafka]\n"security.protocol" = "SSL"\n"sasl.mechanism" = "PLAIN"\n')
    settings = load_settings(env={"EDML_CONFIG": str(tmp_path / "edml.toml"),
                                  "EDML_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert settings.kafka == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert clients.producer_config(settings)["security.protocol"] == "SASL_SSL"
