"""TLS material for the federation listener.

Spec: server-server API "TLS": federation is HTTPS. Operators give a certificate and key
(``--tls-cert``/``--tls-key`` or ``tls_cert``/``tls_key``); without them the local runtime makes
a self-signed pair under ``data_dir/tls/`` once and reuses it, which is enough for peers that
do not check certificates (local testing with ``federation_verify_certificates: false`` on
Synapse, or ``--federation-no-verify-tls`` here).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from local_runtime.config import ConfigError, ServerConfig

SELF_SIGNED_DAYS = 3650


def _host_of(server_name: str) -> str:
    if server_name.startswith("["):
        return server_name[1 : server_name.index("]")]
    return server_name.split(":", 1)[0]


def generate_self_signed_certificate(hostname: str, cert_path: Path, key_path: Path) -> None:
    """Write a self-signed ECDSA P-256 certificate for ``hostname`` (and localhost,
    127.0.0.1, ::1) and its private key (mode 0600) as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        if hostname != "localhost":
            names.append(x509.DNSName(hostname))
    for loopback in ("127.0.0.1", "::1"):
        address = x509.IPAddress(ipaddress.ip_address(loopback))
        if address not in names:
            names.append(address)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def tls_files(config: ServerConfig) -> tuple[Path, Path]:
    """The certificate and key files for the federation listener: the configured ones, or a
    self-signed pair under ``data_dir/tls/`` (made on first use)."""
    if config.tls_cert and config.tls_key:
        cert, key = Path(config.tls_cert).expanduser(), Path(config.tls_key).expanduser()
        for path in (cert, key):
            if not path.is_file():
                raise ConfigError(f"TLS file {path} does not exist")
        return cert, key
    directory = config.data_path / "tls"
    cert, key = directory / "federation.crt", directory / "federation.key"
    if not (cert.is_file() and key.is_file()):
        generate_self_signed_certificate(_host_of(config.server_name), cert, key)
    return cert, key
