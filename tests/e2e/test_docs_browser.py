"""/docs in a real headless Chromium, with no network beyond our own server: Swagger UI renders."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from localpg import free_port
from tests.e2e.processes import running, venv_env, wait_for_health

BROWSERS = ("chromium", "chromium-browser")


def test_docs_render_the_openapi_document_offline(
    migrated_database_url: str, tmp_path: object
) -> None:
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    port = free_port()
    env = venv_env(DATABASE_URL=migrated_database_url, PORT=str(port), HOST="127.0.0.1")
    with running(["sh", "docker/serve"], env) as server:
        wait_for_health(f"http://127.0.0.1:{port}", server)
        rendered = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                f"http://127.0.0.1:{port}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert rendered.returncode == 0, rendered.stderr[-2000:]
    dom = rendered.stdout
    # Only Swagger UI writes these: the static page has the title in <title> alone.
    assert re.search(r'<h2 class="title">Patient Registry API', dom), "Swagger UI did not render"
    assert "List, filter, search, sort and page patients" in dom
    assert re.search(r'class="opblock-summary-path"[^>]*>.*?/patients/\{id\}', dom, re.DOTALL)
