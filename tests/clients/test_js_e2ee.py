"""matrix-js-sdk 43 with its Rust crypto (``initRustCrypto``), run by Node against a real
``matrix-edge serve``: cross-signing bootstrap, an encrypted message decrypted by the other
user, a server-side key backup, its restore on a new device of the receiver (which then
decrypts the old message), and a new message reaching both of the receiver's devices.

The script is tests/clients/js/e2ee.mjs; `make test` installs its node_modules from
package-lock.json (and so does this test when they are missing).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

JS_DIR = Path(__file__).parent / "js"
SCRIPT_SECONDS = 180
EXPECTED_STEPS = 7


def _ensure_node_modules() -> str:
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for the matrix-js-sdk test"
    if not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR, check=True)
    return node


def test_matrix_js_sdk_rust_crypto(live_server) -> None:
    node = _ensure_node_modules()
    result = subprocess.run(
        [node, "e2ee.mjs", live_server.base_url],
        cwd=JS_DIR, capture_output=True, text=True, timeout=SCRIPT_SECONDS,
    )
    steps = [line for line in result.stdout.splitlines() if line.startswith("ok - ")]
    report = "\n".join(steps) + "\n--- stderr (tail) ---\n" + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert len(steps) == EXPECTED_STEPS, report
