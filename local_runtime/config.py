"""Server configuration: embedded defaults, an optional TOML file, then command-line flags.

The TOML file has a ``[server]`` table and a ``[bindings]`` table whose names match
``wrangler.toml.example`` (DB, CACHE, DURABLE)::

    [server]
    server_name = "localhost:8008"
    host = "127.0.0.1"
    port = 8008
    data_dir = "./data"
    enable_registration = true
    default_room_version = "12"

    [bindings]
    DB = "matrix.sqlite"       # the D1 database file, under data_dir
    CACHE = "cache.sqlite"     # the KV namespace file, under data_dir
    DURABLE = "durable"        # actor storage folder, under data_dir
    MEDIA = "media"            # the media bucket's folder (an R2-like blob store), under data_dir

Media settings (``[server]``): ``max_upload_size`` (bytes, default 50 MiB),
``enable_legacy_media`` (serve the deprecated unauthenticated ``/_matrix/media/v3/download``
and ``/thumbnail``; false answers them 404 as a server that froze them does),
``url_previews`` (false: ``preview_url`` is refused), ``media_upload_per_second`` and
``media_upload_burst`` (per-user upload and create rate), ``max_pending_media_uploads``,
``unused_media_expiry_ms`` (how long a created mxc:// URI waits for its upload),
``max_thumbnail_pixels`` (larger images are not thumbnailed: 413).

Support information (``[server]``), served at ``/.well-known/matrix/support``:
``support_page`` (a URL) and ``support_contacts``, a list of tables each with a ``role``
(``m.role.admin``, ``m.role.security`` or a namespaced role) and at least one of
``matrix_id`` and ``email_address``. With neither key set that document answers 404.

Notaries (``[server]``): ``trusted_key_servers``, a list of tables each with a ``server_name``
and ``verify_keys`` (key ID -> unpadded base64 public key), Synapse's shape. When a server's
signing key cannot be had from the server itself, these are asked in turn through
``POST /_matrix/key/v2/query`` (server-server API "Querying Keys Through Another Server");
their answers must be signed by them with one of the configured keys. A notary listed
without ``verify_keys`` is trusted with whatever key it serves over TLS (a warning is logged
at start-up; with ``federation_verify_tls`` off this also needs ``accept_keys_insecurely =
true``). The default is empty: unlike Synapse, this server does not ask matrix.org (or
anyone) unless told to.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from signedjson.key import decode_verify_key_base64

from durable.events.identifiers import is_valid_server_name
from durable.room_versions import KNOWN_ROOM_VERSIONS, DEFAULT_ROOM_VERSION

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration cannot be used; the message says why."""


@dataclass(frozen=True)
class Bindings:
    DB: str = "matrix.sqlite"
    CACHE: str = "cache.sqlite"
    DURABLE: str = "durable"
    MEDIA: str = "media"


@dataclass(frozen=True)
class SupportContact:
    """A way to reach the server's administrators (client-server API, "Well-known URIs",
    ``/.well-known/matrix/support``): a role and a Matrix ID, an email address or both."""

    role: str
    matrix_id: str = ""
    email_address: str = ""

    def to_json(self) -> dict[str, str]:
        contact = {"role": self.role}
        if self.matrix_id:
            contact["matrix_id"] = self.matrix_id
        if self.email_address:
            contact["email_address"] = self.email_address
        return contact


# Roles the spec defines; any other role must be namespaced outside ``m.``.
SUPPORT_ROLES = ("m.role.admin", "m.role.security")


def _support_contact(value: Any) -> SupportContact:
    """A configured contact (a table, or a SupportContact), checked as the spec describes it;
    ConfigError otherwise."""
    if isinstance(value, SupportContact):
        value = {"role": value.role, "matrix_id": value.matrix_id, "email_address": value.email_address}
    if not isinstance(value, Mapping):
        raise ConfigError("each of support_contacts must be a table with role, matrix_id, email_address")
    unknown = set(value) - {"role", "matrix_id", "email_address"}
    if unknown:
        raise ConfigError(f"unknown keys in a support contact: {', '.join(sorted(unknown))}")
    role, matrix_id, email = value.get("role", ""), value.get("matrix_id", ""), value.get("email_address", "")
    if not all(isinstance(v, str) for v in (role, matrix_id, email)):
        raise ConfigError("a support contact's role, matrix_id and email_address must be strings")
    if not role:
        raise ConfigError("a support contact needs a role (such as m.role.admin)")
    if role.startswith("m.") and role not in SUPPORT_ROLES:
        raise ConfigError(f"support contact role {role!r} is not one the spec defines: {', '.join(SUPPORT_ROLES)}")
    if not matrix_id and not email:
        raise ConfigError("a support contact needs a matrix_id or an email_address")
    localpart, _, server = matrix_id[1:].partition(":")
    if matrix_id and (not matrix_id.startswith("@") or not localpart or not server):
        raise ConfigError(f"support contact matrix_id {matrix_id!r} is not a user ID")
    if email and "@" not in email.strip("@"):
        raise ConfigError(f"support contact email_address {email!r} is not an email address")
    return SupportContact(role=role, matrix_id=matrix_id, email_address=email)


@dataclass(frozen=True)
class TrustedKeyServer:
    """A notary to ask for other servers' keys (server-server API "Querying Keys Through
    Another Server"). ``verify_keys`` are its public keys as ``(key ID, unpadded base64)``
    pairs; None when not configured, in which case its key is fetched from it over TLS."""

    server_name: str
    verify_keys: tuple[tuple[str, str], ...] | None = None
    accept_keys_insecurely: bool = False


_KEY_ID = re.compile(r"ed25519:[a-zA-Z0-9_]+")


def _trusted_key_server(value: Any, verify_tls: bool) -> TrustedKeyServer:
    """A configured notary (a table, or a TrustedKeyServer), checked; ConfigError otherwise.

    Key IDs must be ``ed25519:`` with a version of ``[a-zA-Z0-9_]`` (spec: "Server Keys",
    ``verify_keys``) and each key must decode as an ed25519 public key."""
    if isinstance(value, TrustedKeyServer):
        keys = None if value.verify_keys is None else dict(value.verify_keys)
        value = {"server_name": value.server_name, "verify_keys": keys,
                 "accept_keys_insecurely": value.accept_keys_insecurely}
    if not isinstance(value, Mapping):
        raise ConfigError("each of trusted_key_servers must be a table with server_name and verify_keys")
    unknown = set(value) - {"server_name", "verify_keys", "accept_keys_insecurely"}
    if unknown:
        raise ConfigError(f"unknown keys in a trusted key server: {', '.join(sorted(unknown))}")
    name = value.get("server_name")
    if not isinstance(name, str) or not is_valid_server_name(name):
        raise ConfigError(f"trusted key server name {name!r} is not a server name")
    insecure = value.get("accept_keys_insecurely", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"trusted key server {name}: accept_keys_insecurely must be true or false")
    keys = value.get("verify_keys")
    if keys is None:
        if not verify_tls and not insecure:
            raise ConfigError(
                f"trusted key server {name} has no verify_keys and federation_verify_tls is off:"
                " its answers could not be authenticated at all; give its verify_keys"
                " (or set accept_keys_insecurely = true if you are sure)"
            )
        return TrustedKeyServer(name, None, insecure)
    if not isinstance(keys, Mapping) or not keys:
        raise ConfigError(f"trusted key server {name}: verify_keys must be a non-empty table of key ID = key")
    checked: list[tuple[str, str]] = []
    for key_id, key in keys.items():
        if not isinstance(key_id, str) or _KEY_ID.fullmatch(key_id) is None:
            raise ConfigError(f"trusted key server {name}: {key_id!r} is not an ed25519 key ID")
        if not isinstance(key, str):
            raise ConfigError(f"trusted key server {name}: key {key_id} must be an unpadded base64 string")
        try:
            decode_verify_key_base64("ed25519", key_id.partition(":")[2], key)
        except (ValueError, TypeError):  # bad base64, or not 32 bytes
            raise ConfigError(f"trusted key server {name}: key {key_id} is not an ed25519 public key") from None
        checked.append((key_id, key))
    return TrustedKeyServer(name, tuple(checked), insecure)


@dataclass(frozen=True)
class ServerConfig:
    server_name: str = "localhost:8008"
    host: str = "127.0.0.1"
    port: int = 8008
    data_dir: str = "./data"
    public_baseurl: str = ""
    enable_registration: bool = True
    default_room_version: str = DEFAULT_ROOM_VERSION
    log_level: str = "info"
    actor_idle_seconds: float = 120.0
    # TURN servers for /voip/turnServer (none by default: the endpoint answers {}).
    turn_uris: tuple[str, ...] = ()
    turn_shared_secret: str = ""
    turn_username: str = ""
    turn_password: str = ""
    turn_user_lifetime_seconds: int = 86400
    # Rate limits (requests per second, burst); 0 turns a limit off.
    rc_message_per_second: float = 50.0
    rc_message_burst: int = 500
    rc_login_per_second: float = 10.0
    rc_login_burst: int = 100
    rc_registration_per_second: float = 10.0
    rc_registration_burst: int = 100
    max_upload_size: int = 50 * 1024 * 1024
    enable_legacy_media: bool = True
    url_previews: bool = False
    media_upload_per_second: float = 2.0
    media_upload_burst: int = 20
    max_pending_media_uploads: int = 5
    unused_media_expiry_ms: int = 24 * 60 * 60 * 1000
    max_thumbnail_pixels: int = 32_000_000
    # Federation (README "Federating a local instance"): the TLS listener (0 = none), its PEM
    # files (none given = a self-signed pair under data_dir/tls/), outbound TLS checking, and
    # which addresses may be contacted (only global ones unless allowed here).
    federation_port: int = 0
    tls_cert: str = ""
    tls_key: str = ""
    federation_verify_tls: bool = True
    federation_allow_loopback: bool = False
    federation_ip_range_whitelist: tuple[str, ...] = ()
    federation_ip_range_blacklist: tuple[str, ...] = ()
    federation_timeout_seconds: float = 30.0
    # Presence: offline this long after the last sync, unavailable after this long idle (ms).
    presence_sync_timeout_ms: int = 30_000
    presence_idle_ms: int = 5 * 60 * 1000
    # Remote users go offline this long after their server's last update; our users' presence
    # is sent again this often while they are not offline (Synapse's 30 and 25 minutes).
    presence_federation_timeout_ms: int = 30 * 60 * 1000
    presence_federation_ping_ms: int = 25 * 60 * 1000
    # /.well-known/matrix/support (404 when both are empty).
    support_page: str = ""
    support_contacts: tuple[SupportContact, ...] = ()
    # Notaries asked for a server's keys when it cannot be asked itself (none by default).
    trusted_key_servers: tuple[TrustedKeyServer, ...] = ()
    bindings: Bindings = field(default_factory=Bindings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def base_url(self) -> str:
        if self.public_baseurl:
            return self.public_baseurl.rstrip("/")
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::", "::1") else self.host
        return f"http://{host}:{self.port}"

    @property
    def federation_address(self) -> str:
        """What ``/.well-known/matrix/server`` delegates to."""
        return self.server_name

    def validate(self) -> "ServerConfig":
        if not self.server_name or any(c in self.server_name for c in "/@!$# "):
            raise ConfigError(f"invalid server_name {self.server_name!r}")
        if self.default_room_version not in KNOWN_ROOM_VERSIONS:
            raise ConfigError(
                f"default_room_version {self.default_room_version!r} is not supported; "
                f"choose one of {', '.join(KNOWN_ROOM_VERSIONS)}"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"invalid port {self.port}")
        if self.max_upload_size < 1:
            raise ConfigError("max_upload_size must be at least 1 byte")
        if self.media_upload_per_second <= 0 or self.media_upload_burst < 1:
            raise ConfigError("media_upload_per_second must be > 0 and media_upload_burst >= 1")
        return self._validated_federation()._validated_support()._validated_key_servers()

    def _validated_key_servers(self) -> "ServerConfig":
        servers = self.trusted_key_servers
        if isinstance(servers, (str, Mapping)) or not isinstance(servers, (list, tuple)):
            raise ConfigError("trusted_key_servers must be a list of tables")
        checked = tuple(_trusted_key_server(s, self.federation_verify_tls) for s in servers)
        names = [s.server_name for s in checked]
        if self.server_name in names:
            raise ConfigError("trusted_key_servers must not list this server itself")
        if len(set(names)) != len(names):
            raise ConfigError("trusted_key_servers lists a server more than once")
        return replace(self, trusted_key_servers=checked)

    def _validated_support(self) -> "ServerConfig":
        if not isinstance(self.support_page, str):
            raise ConfigError("support_page must be a URL string")
        if self.support_page:
            parts = urlsplit(self.support_page)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"support_page {self.support_page!r} is not an http(s) URL")
        contacts = self.support_contacts
        if isinstance(contacts, (str, Mapping)) or not isinstance(contacts, (list, tuple)):
            raise ConfigError("support_contacts must be a list of tables")
        return replace(self, support_contacts=tuple(_support_contact(c) for c in contacts))

    def _validated_federation(self) -> "ServerConfig":
        if not 0 <= self.federation_port < 65536:
            raise ConfigError(f"invalid federation_port {self.federation_port}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("give tls_cert and tls_key together (or neither, for a self-signed pair)")
        if self.federation_timeout_seconds <= 0:
            raise ConfigError("federation_timeout_seconds must be positive")
        ranges: dict[str, tuple[str, ...]] = {}
        for name in ("federation_ip_range_whitelist", "federation_ip_range_blacklist"):
            values = getattr(self, name)
            if isinstance(values, str) or not all(isinstance(v, str) for v in values):
                raise ConfigError(f"{name} must be a list of CIDR strings")
            for value in values:
                try:
                    ipaddress.ip_network(value, strict=False)
                except ValueError:
                    raise ConfigError(f"{name}: {value!r} is not an IP range") from None
            ranges[name] = tuple(values)
        return replace(self, **ranges)


_SERVER_KEYS = {f.name for f in fields(ServerConfig)} - {"bindings"}


def load_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """Defaults, then the TOML file (if any), then non-None ``overrides``."""
    config = ServerConfig()
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        server = data.get("server", {})
        unknown = set(server) - _SERVER_KEYS
        if unknown:
            raise ConfigError(f"unknown keys in [server]: {', '.join(sorted(unknown))}")
        bindings = data.get("bindings", {})
        unknown = set(bindings) - {f.name for f in fields(Bindings)}
        if unknown:
            raise ConfigError(f"unknown keys in [bindings]: {', '.join(sorted(unknown))}")
        if "turn_uris" in server:
            server["turn_uris"] = tuple(server["turn_uris"])
        config = replace(config, **server, bindings=Bindings(**bindings))
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if "public_baseurl" not in overrides and not config.public_baseurl:
        config = replace(config, public_baseurl=config.base_url)
    config = config.validate()
    for notary in config.trusted_key_servers:
        if notary.verify_keys is None:
            log.warning(
                "trusted key server %s has no verify_keys: its answers will be checked with"
                " whatever key it serves over TLS; configure its keys to pin them",
                notary.server_name,
            )
    return config
