"""EDUs (ephemeral data units) received in transactions, dispatched by ``edu_type``.

Spec: server-server API "EDUs". Each handler is ``async def handler(env, origin, content)``
(``workers.federation.edu_handlers``); an EDU of a type nobody handles is ignored, as the
spec says receivers should do with unknown EDUs, and so is one whose content is not an
object.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Mapping

from workers.federation import edu_handlers

log = logging.getLogger(__name__)

EduHandler = Callable[[Any, str, Any], Awaitable[None]]

HANDLERS: Mapping[str, EduHandler] = {
    "m.typing": edu_handlers.on_typing,
    "m.receipt": edu_handlers.on_receipt,
    "m.presence": edu_handlers.on_presence,
    "m.direct_to_device": edu_handlers.on_direct_to_device,
    "m.device_list_update": edu_handlers.on_device_list_update,
    "m.signing_key_update": edu_handlers.on_signing_key_update,
}


async def dispatch(env: Any, origin: str, edu_type: str, content: Any) -> None:
    handler = HANDLERS.get(edu_type)
    if handler is None:
        log.debug("ignoring EDU %s from %s: no handler", edu_type, origin)
        return
    if not isinstance(content, dict):
        log.info("ignoring EDU %s from %s: content is not an object", edu_type, origin)
        return
    await handler(env, origin, content)
