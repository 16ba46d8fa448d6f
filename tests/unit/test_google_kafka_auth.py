"""Managed Kafka's OAUTHBEARER token and its wiring into every client config."""

from __future__ import annotations

import base64
import datetime
import json

from google.oauth2.credentials import Credentials

from edml.core.config import Settings, load_settings
from edml.kafka.clients import consumer_config, producer_config
from edml.kafka.google_auth import managed_kafka_token


def _part(token: str, i: int) -> bytes:
    piece = token.split(".")[i]
    return base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4))


def test_token_carries_the_access_token_and_principal() -> None:
    expiry = datetime.datetime(2030, 1, 1, 12, 0, 0)
    creds = Credentials(token="ya29.access-token", expiry=expiry)
    creds.service_account_email = "edml-scorer@proj.iam.gserviceaccount.com"
    token, expires = managed_kafka_token(creds, now=1_800_000_000)
    assert json.loads(_part(token, 0)) == {"typ": "JWT", "alg": "GOOG_OAUTH2_TOKEN"}
    payload = json.loads(_part(token, 1))
    assert payload["sub"] == "edml-scorer@proj.iam.gserviceaccount.com"
    assert payload["scope"] == "kafka" and payload["iss"] == "Google" and payload["iat"] == 1_800_000_000
    assert payload["exp"] == int(expires) == int(expiry.replace(tzinfo=datetime.UTC).timestamp())
    assert _part(token, 2) == b"ya29.access-token"


def test_google_auth_reaches_producers_and_consumers(monkeypatch) -> None:  # noqa: ANN001
    import google.auth

    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (Credentials(token="t"), "proj"))
    settings = load_settings(env={"EDML_GOOGLE_KAFKA_AUTH": "1", "EDML_BOOTSTRAP_SERVERS": "k:9092"})
    assert settings.google_kafka_auth
    for config in (producer_config(settings), consumer_config(settings, "g")):
        assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "OAUTHBEARER"
        assert callable(config["oauth_cb"])
    assert "oauth_cb" not in producer_config(Settings())
