"""A real broker with a SASL_SSL listener (SCRAM-SHA-512 over TLS), and the certificates it needs.

The broker keeps its PLAINTEXT listener for its own use (readiness probe, inter-broker); clients
of the test reach it on the SASL_SSL port only, with a CA file, user name and password, so a
client that did not get the ``[kafka]`` settings cannot talk to it at all.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edml.kafka.local_broker import LocalBroker
from tests.helpers.ports import free_port

USER, PASSWORD = "edml-scorer", "s3cret-for-tests"
MECHANISM = "SCRAM-SHA-512"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA (``ca.pem``) and a server key + certificate for 127.0.0.1/localhost signed by it (``server.pem``)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("edml test CA")).issuer_name(_name("edml test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    ca_path, server_path = folder / "ca.pem", folder / "server.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
        + server.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    return ca_path, server_path


@dataclass
class SaslSslBroker(LocalBroker):
    """A LocalBroker with an extra SASL_SSL listener on ``sasl_port``."""

    sasl_port: int = field(default_factory=free_port)
    ca_file: Path | None = None

    @property
    def secure_bootstrap_servers(self) -> str:
        """Where clients connect (SASL_SSL)."""
        return f"127.0.0.1:{self.sasl_port}"

    def client_settings(self) -> dict[str, str]:
        """The ``[kafka]`` properties a client needs for this broker."""
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": MECHANISM, "sasl.username": USER,
                "sasl.password": PASSWORD, "ssl.ca.location": str(self.ca_file)}

    def _write_properties(self) -> Path:
        props = super()._write_properties()
        ca, server = write_certificates(self.home / "tls") if self.ca_file is None else (
            self.ca_file, self.home / "tls" / "server.pem")
        self.ca_file = ca
        lines = []
        for line in props.read_text().splitlines():
            if line.startswith("listeners="):
                line += f",SASL_SSL://127.0.0.1:{self.sasl_port}"
            elif line.startswith("advertised.listeners="):
                line += f",SASL_SSL://127.0.0.1:{self.sasl_port}"
            elif line.startswith("listener.security.protocol.map="):
                line += ",SASL_SSL:SASL_SSL"
            lines.append(line)
        lines += [
            "inter.broker.listener.name=PLAINTEXT",
            f"sasl.enabled.mechanisms={MECHANISM}",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={server}",
            "",
        ]
        props.write_text("\n".join(lines))
        return props

    def up(self, timeout: float = 90.0) -> bool:
        """Format the storage with the SCRAM user on first start, then start as usual."""
        if not (self.home / "data" / "meta.properties").exists():
            self.home.mkdir(parents=True, exist_ok=True)
            props = self._write_properties()
            fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22],
                                            "-c", str(props), "--add-scram",
                                            f"{MECHANISM}=[name={USER},password={PASSWORD}]"),
                                 capture_output=True, text=True)
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting KRaft storage failed: {fmt.stdout}{fmt.stderr}")
        return super().up(timeout)
