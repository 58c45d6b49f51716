"""The deployment files tell the truth about settings.

- docker-compose.yml sets on web/worker/beat only variables config/settings.py reads;
- README's Configuration table lists exactly the variables settings.py reads;
- `manage.py check --deploy` with DEBUG off prints no warning README does not explain.

No Docker engine runs here, so the compose file is checked by reading it, not by running it.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parent.parent
SETTINGS = BASE_DIR / "config" / "settings.py"
README = BASE_DIR / "README.md"
COMPOSE = BASE_DIR / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "beat")

# env.str("NAME", ...), env.bool("NAME"), env("NAME"), env.db_url("NAME", ...), and the
# plain os.environ forms in case one slips in.
_ENV_READ = re.compile(
    r"""(?:\benv(?:\.\w+)?|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def settings_variables() -> set[str]:
    names = set(_ENV_READ.findall(SETTINGS.read_text()))
    assert len(names) > 10, "the pattern no longer matches how settings.py reads variables"
    return names


def readme_section(title: str) -> str:
    """Return the text of the `## <title>` section of README.md."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def readme_variables() -> set[str]:
    """Variables in the first column of the Configuration tables: | `NAME` | ... |."""
    section = readme_section("Configuration")
    return set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", section, re.M))


def compose_environment(service: dict) -> dict[str, object]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "NAME=value" form
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def test_compose_sets_only_variables_settings_reads() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    known = settings_variables()
    for name in APP_SERVICES:
        assert name in services, f"docker-compose.yml has no {name} service"
        env = compose_environment(services[name])
        assert env, f"{name} sets no environment"
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name} sets {unknown}, which config/settings.py never reads"
        assert "env_file" not in services[name], "pass variables explicitly, not via env_file"


def test_compose_runs_production_settings() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in APP_SERVICES:
        env = compose_environment(services[name])
        assert str(env["DEBUG"]) == "0"
        assert "?" in str(env["SECRET_KEY"]), "SECRET_KEY must be required (${SECRET_KEY:?...})"
        for required in ("DATABASE_URL", "CELERY_BROKER_URL", "S3_ENDPOINT", "S3_ACCESS_KEY"):
            assert required in env, f"{name} lacks {required}"
    redis_command = " ".join(map(str, services["redis"].get("command", [])))
    assert "--maxmemory-policy noeviction" in redis_command


def test_readme_documents_exactly_the_settings_variables() -> None:
    documented, read = readme_variables(), settings_variables()
    assert not read - documented, f"README does not document {sorted(read - documented)}"
    assert not documented - read, f"README documents {sorted(documented - read)}, unread"


def test_check_deploy_warns_only_about_what_readme_explains(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "SECURE_"))}
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50)[:50],
            "S3_ACCESS_KEY": "x",
            "S3_SECRET_KEY": "y",
            "ALLOWED_HOSTS": "example.org",
            "VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warned = set(re.findall(r"\(([\w.]+\.[WE]\d+)\)", output))
    explained = set(
        re.findall(r"`([\w.]+\.W\d+)`", readme_section("Production with Docker Compose"))
    )
    unexplained = warned - explained
    assert not unexplained, f"check --deploy warnings README does not explain: {output}"


@pytest.mark.parametrize("path", ["Dockerfile", "docker-compose.yml", ".dockerignore"])
def test_deployment_files_exist(path: str) -> None:
    assert (BASE_DIR / path).is_file()


def test_dockerfile_runs_as_non_root_and_serves_with_gunicorn() -> None:
    text = (BASE_DIR / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the final stage must not run as root"
    assert "collectstatic" in text
    assert "gunicorn" in text and "config.wsgi" in text
