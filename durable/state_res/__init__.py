"""State resolution v2 (room versions 2 to 11) and v2.1 (room version 12).

Spec: https://spec.matrix.org/v1.19/rooms/v2/#state-resolution and
https://spec.matrix.org/v1.19/rooms/v12/#state-resolution. One module per step:
``conflicts`` (unconflicted map / conflicted set), ``auth_chain`` (auth chains, auth
difference), ``subgraph`` (v2.1 conflicted state subgraph), ``ordering`` (reverse topological
power ordering, mainline ordering), ``iterative`` (iterative auth checks), ``resolve``.
"""

from durable.state_res.resolve import UnsupportedStateResAlgorithm, resolve_state

__all__ = ["UnsupportedStateResAlgorithm", "resolve_state"]
