"""A configuration error is the one thing that makes ``edml serve`` exit: with code 2 and one line.

Each case starts a real ``edml serve`` (in parallel, to keep the suite fast) with one mistake.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edml.core.config import Settings
from edml.kafka.local_broker import free_port
from tests.integration.scorer_process import ScorerProcess, scorer_env, wait_until

pytestmark = pytest.mark.kafka


def rsa_public_key(path: Path) -> Path:
    """An RSA public key (PEM): a real key, of the wrong kind."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_configuration_errors_exit_2_with_one_line(settings: Settings, tmp_path: Path) -> None:
    garbage_pem = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"
    cases: dict[str, tuple[dict[str, str], str]] = {
        "public key file missing": ({"EDML_MODEL_PUBLIC_KEY": str(tmp_path / "no-such.pub")}, "no-such.pub"),
        "public key not PEM": ({"EDML_MODEL_PUBLIC_KEY": garbage_pem}, "public key"),
        "public key not ed25519": ({"EDML_MODEL_PUBLIC_KEY": str(rsa_public_key(tmp_path / "rsa.pub"))}, "ed25519"),
        "unknown security protocol": ({"EDML_KAFKA_SECURITY_PROTOCOL": "PLAINTXT"},
                                      'refused: Invalid value "PLAINTXT" for configuration property'),
        "CA file missing": ({"EDML_KAFKA_SECURITY_PROTOCOL": "SSL", "EDML_KAFKA_SSL_CA_LOCATION": "/no/ca.pem"},
                            "refused: Failed to create admin client: ssl.ca.location failed"),
        "unknown client property": ({"EDML_KAFKA_SASL_MECHANISMZ": "PLAIN"},
                                    'refused: No such configuration property: "sasl.mechanismz"'),
        "partitions not a number": ({"EDML_PARTITIONS": "four"}, "partitions"),
        "unsupported artifact store": ({"EDML_ARTIFACT_STORE": "s3://bucket/models"}, "s3://bucket/models"),
        "state folder in use": ({"EDML_STATE_DIR": str(settings.state_dir)}, "in use by another scorer"),
    }
    # the scorer whose state folder the last case tries to share
    first = ScorerProcess(settings).start()
    try:
        wait_until(lambda: _serving_metrics(first), 120, message="the first scorer did not start")
        _run_cases(settings, tmp_path, cases)
    finally:
        first.stop()


def _serving_metrics(scorer: ScorerProcess) -> bool:
    try:
        scorer.metrics()
    except OSError:
        return False
    return True


def _run_cases(settings: Settings, tmp_path: Path, cases: dict[str, tuple[dict[str, str], str]]) -> None:
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "edml.cli", "serve", "--metrics-port", str(free_port())],
            env={**scorer_env(settings), "EDML_STATE_DIR": str(tmp_path / f"state-{i}"), **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i, (name, (env, _)) in enumerate(cases.items())
    }
    failures = []
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            failures.append(f"{name}: still running after 90 s (a config error must exit)\n{err[-2000:]}")
            continue
        errors = [line for line in err.splitlines() if line.startswith("edml: error:")]
        print(f"[config error] {name:26s} exit={proc.returncode} {errors[-1] if errors else err.strip()[-300:]}")
        if proc.returncode != 2 or len(errors) != 1 or "Traceback" in err or cases[name][1] not in errors[0]:
            failures.append(f"{name}: exit {proc.returncode}, stderr:\n{err[-3000:]}")
    assert not failures, "\n\n".join(failures)


def test_a_busy_cluster_port_exits_2_with_one_line_before_anything_starts(settings: Settings,
                                                                           tmp_path: Path) -> None:
    with socket.socket() as taken:  # another program holds the first cluster port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "edml.cli", "serve", "--processes", "2", "--cluster-port", str(busy),
             "--metrics-port", str(free_port())],
            env={**scorer_env(settings), "EDML_STATE_DIR": str(tmp_path / "state")},
            capture_output=True, text=True, timeout=90,
        )
        seconds = time.monotonic() - started
    print(f"[busy cluster port] exit={proc.returncode} after {seconds:.1f} s: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [
        f"edml: error: cluster port {busy} is in use (the 2 processes listen on {busy}..{busy + 1}): "
        "pass another --cluster-port"]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
