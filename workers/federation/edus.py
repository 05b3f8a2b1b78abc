"""EDUs (ephemeral data units) received in transactions, dispatched by ``edu_type``.

Spec: server-server API "EDUs". Each handler is ``async def handler(env, origin, content)``
and registers itself with ``register``; an EDU of a type nobody handles is ignored, as the
spec says receivers should do with unknown EDUs.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

EduHandler = Callable[[Any, str, Any], Awaitable[None]]
_HANDLERS: dict[str, EduHandler] = {}


def register(edu_type: str, handler: EduHandler) -> None:
    _HANDLERS[edu_type] = handler


async def dispatch(env: Any, origin: str, edu_type: str, content: Any) -> None:
    handler = _HANDLERS.get(edu_type)
    if handler is None:
        log.debug("ignoring EDU %s from %s: no handler", edu_type, origin)
        return
    if not isinstance(content, dict):
        log.info("ignoring EDU %s from %s: content is not an object", edu_type, origin)
        return
    await handler(env, origin, content)
