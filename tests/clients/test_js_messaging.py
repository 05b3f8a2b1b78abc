"""matrix-js-sdk's rich messaging through a real ``matrix-edge serve``
(tests/clients/js/messaging.mjs), driven by the SDK's own API and sync model with
``threadSupport``: edits and their bundled ``m.replace``; reactions through ``/relations``;
replies and ``m.mentions`` highlights; threads (the SDK's thread model, ``/threads``, bundled
``m.thread``, an edit inside a thread); threaded read receipts and per-thread
``unread_thread_notifications``; redactions updating the aggregations; a fresh device's
initial sync, thread list, thread pagination and ``/context``; a room upgrade; and a space
hierarchy.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.clients.test_js_e2ee import JS_DIR, _ensure_node_modules

pytestmark = pytest.mark.slow

SCRIPT_SECONDS = 120
EXPECTED_STEPS = 11


def test_matrix_js_sdk_rich_messaging(live_server) -> None:
    node = _ensure_node_modules()
    result = subprocess.run(
        [node, "messaging.mjs", live_server.base_url],
        cwd=JS_DIR, capture_output=True, text=True, timeout=SCRIPT_SECONDS,
    )
    lines = result.stdout.splitlines()
    steps = [line for line in lines if line.startswith("ok - ")]
    failures = [line for line in lines if line.startswith("not ok - ")]
    report = "\n".join(steps + failures) + "\n--- stderr (tail) ---\n" + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert len(steps) == EXPECTED_STEPS, report
