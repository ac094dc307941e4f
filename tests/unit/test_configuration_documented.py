import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]


def variables_read_by(path: pathlib.Path) -> set[str]:
    return set(re.findall(r'get\("([A-Z_]+)"', path.read_text(encoding="utf-8")))


def test_every_setting_is_documented_in_env_example_and_readme() -> None:
    variables = variables_read_by(REPO / "api" / "settings.py")
    env_example = (REPO / ".env.example").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")

    assert len(variables) >= 10
    assert {name for name in variables if f"{name}=" not in env_example} == set()
    assert {name for name in variables if f"`{name}`" not in readme} == set()


def test_compose_passes_every_setting_to_the_containers() -> None:
    compose = (REPO / "compose.yaml").read_text(encoding="utf-8")
    variables = variables_read_by(REPO / "api" / "settings.py")

    assert {name for name in variables if f"    {name}: " not in compose} == set()


def test_compose_passes_what_docker_serve_reads_and_waits_for_its_shutdown() -> None:
    serve = (REPO / "docker" / "serve").read_text(encoding="utf-8")
    compose = (REPO / "compose.yaml").read_text(encoding="utf-8")
    read = set(re.findall(r"\$\{([A-Z_]+):-", serve)) - {"PORT", "HOST"}  # fixed in the image

    assert read >= {"MIGRATE_ON_START", "FORWARDED_ALLOW_IPS", "GRACEFUL_SHUTDOWN_SECONDS"}
    assert {name for name in read if f"      {name}: " not in compose} == set()
    graceful = int(re.search(r"GRACEFUL_SHUTDOWN_SECONDS:-(\d+)", serve).group(1))  # type: ignore[union-attr]
    grace = int(re.search(r"stop_grace_period: (\d+)s", compose).group(1))  # type: ignore[union-attr]
    assert grace > graceful + 10  # requests in flight, then the pool's close
