"""render.yaml and docs/fleet.md's PgBouncer snippet: parseable, and naming what exists."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import yaml  # type: ignore[import-untyped]

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGURE = REPO / "docker" / "pgbouncer" / "configure.py"


def services(text: str) -> dict[str, dict[str, Any]]:
    return {service["type"]: service for service in yaml.safe_load(text)["services"]}


def fleet_snippet() -> str:
    doc = (REPO / "docs" / "fleet.md").read_text(encoding="utf-8")
    blocks: list[str] = [
        block for block in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "pserv" in block
    ]
    assert len(blocks) == 1
    return blocks[0]


def env_keys(service: dict[str, Any]) -> set[str]:
    return {variable["key"] for variable in service["envVars"]}


def test_render_blueprint_stays_a_single_instance_docker_deploy() -> None:
    web = services((REPO / "render.yaml").read_text(encoding="utf-8"))["web"]

    assert web["numInstances"] == 1
    assert "scaling" not in web
    assert (REPO / web["dockerfilePath"]).is_file()
    assert web["healthCheckPath"] == "/health"


def test_fleet_snippet_builds_pgbouncer_from_the_repository_with_variables_it_reads() -> None:
    snippet = services(fleet_snippet())
    pserv, web = snippet["pserv"], snippet["web"]
    read = set(re.findall(r'"(DATABASE_URL|PGBOUNCER_[A-Z_]+)"', CONFIGURE.read_text("utf-8")))
    blueprint = services((REPO / "render.yaml").read_text(encoding="utf-8"))
    database = yaml.safe_load((REPO / "render.yaml").read_text(encoding="utf-8"))["databases"][0]

    assert pserv["runtime"] == "docker"
    assert (REPO / pserv["dockerfilePath"]).is_file()
    assert (REPO / pserv["dockerContext"] / "configure.py").is_file()
    assert env_keys(pserv) <= read
    assert pserv["envVars"][0]["fromDatabase"]["name"] == database["name"]
    assert web["name"] == blueprint["web"]["name"]
    assert {"DATABASE_URL", "DB_POOLER"} <= env_keys(web)
    assert web["numInstances"] > 1
