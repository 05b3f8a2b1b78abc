"""Federation: the server-server API's transport layer.

Modules:
- ``x_matrix``: the X-Matrix header (build, parse); ``auth``: verifying incoming requests
  (``require_server``);
- ``discovery`` and ``ip_policy``: where a server name leads and which addresses we may
  contact; ``client``: ``FederationClient``, signed HTTPS requests; ``errors``: what failures
  look like;
- ``key_store``: remote servers' keys (D1 truth, KV cache, fetched from the origin, else through the configured notaries);
  ``keys_server``: ``/_matrix/key/v2/server`` and the notary ``/_matrix/key/v2/query``;
- ``version`` and ``query``: ``/_matrix/federation/v1/version``, ``/query/profile``,
  ``/query/directory``.

``routes`` collects the endpoints of this package for ``workers.app``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from workers.federation import keys_server, query, version

routes: list[BaseRoute] = [*keys_server.routes, *version.routes, *query.routes]
