"""matrix-js-sdk uploads and downloads media through a real ``matrix-edge serve``
(tests/clients/js/media.mjs): media config, uploads, byte-identical authenticated downloads,
a thumbnail, and a refused anonymous download."""

from __future__ import annotations

import subprocess

import pytest

from tests.clients.test_js_e2ee import JS_DIR, _ensure_node_modules

pytestmark = pytest.mark.slow

EXPECTED_STEPS = 6


def test_matrix_js_sdk_media(live_server) -> None:
    node = _ensure_node_modules()
    result = subprocess.run(
        [node, "media.mjs", live_server.base_url], cwd=JS_DIR, capture_output=True, text=True, timeout=120,
    )
    steps = [line for line in result.stdout.splitlines() if line.startswith("ok - ")]
    report = "\n".join(steps) + "\n--- stderr (tail) ---\n" + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert len(steps) == EXPECTED_STEPS, report
