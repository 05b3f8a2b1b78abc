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
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from durable.room_versions import KNOWN_ROOM_VERSIONS, DEFAULT_ROOM_VERSION


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
        return self._validated_federation()._validated_support()

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
    return config.validate()
