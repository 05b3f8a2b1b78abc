"""Synapse, the reference homeserver, as a real federation peer on 127.0.0.1.

Installed from PyPI by ``make test`` (the ``interop`` extra). The generated config follows
what makes loopback federation work with Synapse 1.163: the server is named
``localhost:PORT`` with its TLS federation listener on exactly that port (self-signed
certificate), ``federation_verify_certificates: false``, loopback in ``ip_range_whitelist``,
no trusted key servers (keys are fetched from each server directly), open registration
without verification, public room lists over federation, and rate limits high enough not to
get in the way of tests. The client API listens on a second, plain HTTP port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from signedjson.key import write_signing_keys

from local_runtime.tls import generate_self_signed_certificate
from tests.federation.local_server import free_port
from tests.federation.peers import make_signing_key

START_TIMEOUT_SECONDS = 60.0
PASSWORD = "interop password 1"

_HIGH = {"per_second": 1000, "burst_count": 1000}


def synapse_config(directory: Path, federation_port: int, client_port: int) -> dict[str, Any]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    generate_self_signed_certificate("localhost", cert, key)
    return {
        "server_name": f"localhost:{federation_port}",
        "pid_file": str(directory / "homeserver.pid"),
        "public_baseurl": f"http://127.0.0.1:{client_port}/",
        "listeners": [
            {
                "port": federation_port, "bind_addresses": ["127.0.0.1"], "type": "http",
                "tls": True, "x_forwarded": False,
                "resources": [{"names": ["federation"], "compress": False}],
            },
            {
                "port": client_port, "bind_addresses": ["127.0.0.1"], "type": "http",
                "tls": False, "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            },
        ],
        "tls_certificate_path": str(cert),
        "tls_private_key_path": str(key),
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "log_config": str(directory / "log.config.yaml"),
        "media_store_path": str(directory / "media"),
        "signing_key_path": str(directory / "signing.key"),
        "report_stats": False,
        "enable_metrics": False,
        "macaroon_secret_key": os.urandom(16).hex(),
        "form_secret": os.urandom(16).hex(),
        "registration_shared_secret": os.urandom(16).hex(),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_verify_certificates": False,
        "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "room_list_publication_rules": [{"action": "allow"}],
        "allow_public_rooms_over_federation": True,
        "rc_message": _HIGH,
        "rc_registration": _HIGH,
        "rc_registration_token_validity": _HIGH,
        "rc_login": {"address": _HIGH, "account": _HIGH, "failed_attempts": _HIGH},
        "rc_admin_redaction": _HIGH,
        "rc_joins": {"local": _HIGH, "remote": _HIGH},
        "rc_joins_per_room": _HIGH,
        "rc_3pid_validation": _HIGH,
        "rc_invites": {"per_room": _HIGH, "per_user": _HIGH, "per_issuer": _HIGH},
        "rc_third_party_invite": _HIGH,
        "rc_federation": {
            "window_size": 1000, "sleep_limit": 1000, "sleep_delay": 1,
            "reject_limit": 1000, "concurrent": 100,
        },
        "rc_presence": {"per_user": _HIGH},
        "rc_delayed_event_mgmt": _HIGH,
        "rc_room_creation": _HIGH,
        "rc_reports": _HIGH,
        "rc_key_requests": _HIGH,
    }


LOG_CONFIG = """version: 1
formatters:
  plain:
    format: '%(asctime)s %(levelname)s %(name)s: %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: plain
    filename: {path}
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"""


class SynapsePeer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.federation_port = free_port()
        self.client_port = free_port()
        self.server_name = f"localhost:{self.federation_port}"
        self.signing_key = make_signing_key("a_interop")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    def log_tail(self, lines: int = 60) -> str:
        text = ""
        for path in (self.log_path, self.directory / "stdout.log"):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def start(self) -> "SynapsePeer":
        self.directory.mkdir(parents=True, exist_ok=True)
        config = synapse_config(self.directory, self.federation_port, self.client_port)
        # JSON is YAML: Synapse reads this file as its config.
        (self.directory / "homeserver.yaml").write_text(json.dumps(config, indent=1))
        (self.directory / "log.config.yaml").write_text(LOG_CONFIG.format(path=self.log_path))
        with open(self.directory / "signing.key", "w") as fh:
            write_signing_keys(fh, [self.signing_key])
        stdout = open(self.directory / "stdout.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.directory / "homeserver.yaml")],
            cwd=self.directory, stdout=stdout, stderr=subprocess.STDOUT,
        )
        stdout.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                ready = httpx.get(f"{self.client_url}/_matrix/client/versions", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"Synapse did not start within {START_TIMEOUT_SECONDS:.0f}s:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    # --- client API helpers -----------------------------------------------------------------
    def register(self, username: str) -> dict[str, Any]:
        """Register ``username`` through the dummy flow; returns the /register response."""
        url = f"{self.client_url}/_matrix/client/v3/register"
        body: dict[str, Any] = {"username": username, "password": PASSWORD}
        first = httpx.post(url, json=body, timeout=30)
        if first.status_code == 200:
            return first.json()
        session = first.json()["session"]
        second = httpx.post(url, json={**body, "auth": {"type": "m.login.dummy", "session": session}}, timeout=30)
        second.raise_for_status()
        return second.json()

    def client(self, access_token: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.client_url}/_matrix/client/v3",
            headers={"Authorization": f"Bearer {access_token}"}, timeout=60,
        )
