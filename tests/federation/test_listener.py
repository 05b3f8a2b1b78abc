"""The TLS federation listener of ``matrix-edge serve`` and its configuration."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from local_runtime.config import ConfigError, load_config
from local_runtime.tls import tls_files
from tests.federation.local_server import free_port


def test_self_signed_pair_is_made_once_under_the_data_dir(tmp_path: Path) -> None:
    config = load_config(data_dir=str(tmp_path), server_name="matrix.example.org:8448")
    cert, key = tls_files(config)
    assert cert.parent == tmp_path.resolve() / "tls" and oct(key.stat().st_mode & 0o777) == "0o600"
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "matrix.example.org" in names.get_values_for_type(x509.DNSName)
    before = cert.read_bytes()
    assert tls_files(config) == (cert, key) and cert.read_bytes() == before  # reused, not remade


def test_given_tls_files_are_used_and_checked(tmp_path: Path) -> None:
    made = tls_files(load_config(data_dir=str(tmp_path / "a")))
    config = load_config(data_dir=str(tmp_path / "b"), tls_cert=str(made[0]), tls_key=str(made[1]))
    assert tls_files(config) == made
    with pytest.raises(ConfigError):
        tls_files(load_config(data_dir=str(tmp_path), tls_cert=str(tmp_path / "no.crt"), tls_key=str(made[1])))


@pytest.mark.parametrize(
    "options",
    [
        {"tls_cert": "only-a-cert.pem"},
        {"federation_port": 70000},
        {"federation_ip_range_whitelist": ["not a range"]},
        {"federation_timeout_seconds": 0},
    ],
)
def test_bad_federation_settings_are_refused(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_config(data_dir=str(tmp_path), **options)


def test_federation_settings_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[server]\nfederation_port = 8448\nfederation_verify_tls = false\n"
        'federation_ip_range_whitelist = ["10.0.0.0/8"]\nfederation_allow_loopback = true\n'
    )
    config = load_config(path)
    assert (config.federation_port, config.federation_verify_tls, config.federation_allow_loopback) == (8448, False, True)
    assert config.federation_ip_range_whitelist == ("10.0.0.0/8",)


@pytest.mark.slow
def test_serve_runs_a_tls_federation_listener_beside_the_client_one(tmp_path: Path) -> None:
    port, federation_port = free_port(), free_port()
    server_name = f"localhost:{federation_port}"
    exe = Path(sys.executable).parent / "matrix-edge"
    process = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--server-name", server_name, "--federation-port", str(federation_port),
         "--federation-no-verify-tls", "--federation-allow-loopback"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        keys = None
        while time.monotonic() < deadline and keys is None:
            try:
                keys = httpx.get(f"https://127.0.0.1:{federation_port}/_matrix/key/v2/server", verify=False, timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        assert keys is not None, "federation listener did not answer within 30 s"
        assert keys["server_name"] == server_name
        # the same app on both listeners; .well-known points at the server name
        assert httpx.get(f"http://127.0.0.1:{port}/.well-known/matrix/server").json() == {"m.server": server_name}
        assert httpx.get(f"http://127.0.0.1:{port}/_matrix/key/v2/server").json()["verify_keys"] == keys["verify_keys"]
        with pytest.raises(httpx.HTTPError):  # and it really is TLS
            httpx.get(f"http://127.0.0.1:{federation_port}/_matrix/key/v2/server", timeout=2)
        assert (tmp_path / "data" / "tls" / "federation.crt").is_file()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert f"federation (TLS) on https://127.0.0.1:{federation_port}" in output
