"""Shared pieces of the federated E2EE and ephemeral tests: a local user with signed device
keys, a room of ours that a forged peer's user has joined (make_join/send_join through the
app), signed federation requests, and waiting for the EDUs our server sends the peer."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any, Callable

import httpx
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from durable.events import add_content_hash, event_from_pdu, sign_event
from durable.room_versions import get_room_version
from tests.federation.conftest import OURS, FedApp
from tests.federation.peers import ForgedPeer

V3 = "/_matrix/client/v3"
PASSWORD = "pw pw pw 1"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class LocalUser:
    """A user of our server with one device holding an Ed25519 key, as a client would."""

    def __init__(self, fed: FedApp, name: str, *, login: bool = False) -> None:
        """Register ``name`` (or, with ``login``, log in to it again as a new device)."""
        self.fed = fed
        if login:
            body: dict[str, Any] = {"type": "m.login.password", "password": PASSWORD,
                                    "identifier": {"type": "m.id.user", "user": name}}
            response = fed.client.post(f"{V3}/login", json=body)
        else:
            body = {"username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
            response = fed.client.post(f"{V3}/register", json=body)
        assert response.status_code == 200, response.text
        account = response.json()
        self.user_id: str = account["user_id"]
        self.device_id: str = account["device_id"]
        self.headers = {"Authorization": f"Bearer {account['access_token']}"}
        self.signing_key = generate_signing_key(self.device_id)
        self.since: str | None = None

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return self.fed.client.request(method, V3 + path, json=body, headers=self.headers, params=params or None)

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.request(method, path, body, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def device_keys(self, device_id: str | None = None, signing_key: Any = None) -> dict[str, Any]:
        device_id = device_id or self.device_id
        key = signing_key or self.signing_key
        keys = {
            "user_id": self.user_id, "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{device_id}": "curve" + device_id,
                     f"ed25519:{device_id}": encode_verify_key_base64(get_verify_key(key))},
        }
        return sign_json(keys, self.user_id, key)

    def upload_keys(self, otk_count: int = 0) -> None:
        otks = {
            f"signed_curve25519:K{n}": sign_json({"key": f"otk{n}"}, self.user_id, self.signing_key)
            for n in range(otk_count)
        }
        self.ok("POST", "/keys/upload", {"device_keys": self.device_keys(), "one_time_keys": otks})

    def create_room(self) -> str:
        return self.ok("POST", "/createRoom", {"preset": "public_chat"})["room_id"]

    def sync(self) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": 0}
        if self.since is not None:
            params["since"] = self.since
        body = self.ok("GET", "/sync", **params)
        self.since = body["next_batch"]
        return body


def federation_request(fed: FedApp, peer: ForgedPeer, method: str, path: str, body: Any = None,
                       query: dict[str, Any] | None = None) -> httpx.Response:
    uri, headers = peer.signed_headers(OURS, method, path, query, body)
    return fed.client.request(method, uri, json=body, headers=headers)


def send_edus(fed: FedApp, peer: ForgedPeer, edus: list[dict[str, Any]]) -> None:
    body = {"origin": peer.server_name, "origin_server_ts": int(time.time() * 1000), "pdus": [], "edus": edus}
    response = federation_request(fed, peer, "PUT", f"/_matrix/federation/v1/send/t{time.monotonic_ns()}", body)
    assert response.status_code == 200, response.text


def peer_joins(fed: FedApp, peer: ForgedPeer, room_id: str, user_id: str) -> None:
    """``user_id`` of ``peer`` joins our room through make_join and send_join."""
    made = federation_request(fed, peer, "GET", f"/_matrix/federation/v1/make_join/{q(room_id)}/{q(user_id)}",
                              query={"ver": ["10", "11", "12"]})
    assert made.status_code == 200, made.text
    version = get_room_version(made.json()["room_version"])
    template = dict(made.json()["event"])
    template["origin_server_ts"] = int(time.time() * 1000)
    pdu = sign_event(add_content_hash(template), version, peer.server_name, peer.signing_key)
    event_id = event_from_pdu(pdu, version).event_id
    sent = federation_request(fed, peer, "PUT", f"/_matrix/federation/v2/send_join/{q(room_id)}/{q(event_id)}", pdu)
    assert sent.status_code == 200, sent.text


def sent_edus(peer: ForgedPeer, edu_type: str) -> list[dict[str, Any]]:
    """The contents of every EDU of ``edu_type`` our server has sent the peer so far."""
    return [e["content"] for t in peer.transactions for e in t.get("edus", []) if e["edu_type"] == edu_type]


def wait_for_edus(peer: ForgedPeer, edu_type: str, count: int = 1, seconds: float = 5.0,
                  where: Callable[[dict[str, Any]], bool] = lambda c: True) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        found = [c for c in sent_edus(peer, edu_type) if where(c)]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{peer.server_name} got {len(found)} {edu_type} EDUs, wanted {count}"
        time.sleep(0.02)
