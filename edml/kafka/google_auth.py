"""SASL/OAUTHBEARER tokens for Google Cloud Managed Service for Apache Kafka.

Managed Kafka accepts, as the OAUTHBEARER token, a JWT-shaped string whose header names the
``GOOG_OAUTH2_TOKEN`` algorithm, whose payload names the principal, and whose third part is a
Google OAuth2 access token. The access token comes from Application Default Credentials (on GKE:
Workload Identity), so no key is stored anywhere.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
from typing import Any

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def managed_kafka_token(credentials: Any, now: float | None = None) -> tuple[str, float]:
    """(token, expiry as epoch seconds) for refreshed Google ``credentials``."""
    now = time.time() if now is None else now
    when = getattr(credentials, "expiry", None)
    # google-auth keeps expiry as a naive UTC datetime
    expiry = when.replace(tzinfo=when.tzinfo or datetime.UTC).timestamp() if when else now + 3600
    principal = getattr(credentials, "service_account_email", None) or getattr(credentials, "account", "") or ""
    header = {"typ": "JWT", "alg": "GOOG_OAUTH2_TOKEN"}
    payload = {"exp": int(expiry), "iat": int(now), "iss": "Google", "scope": "kafka", "sub": principal}
    token = ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()),
                      _b64(credentials.token.encode())])
    return token, expiry


def oauth_callback() -> Any:
    """A librdkafka ``oauth_cb``: refreshes Application Default Credentials when asked."""
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=SCOPES)

    def callback(_config: str) -> tuple[str, float]:
        credentials.refresh(google.auth.transport.requests.Request())
        return managed_kafka_token(credentials)

    return callback
