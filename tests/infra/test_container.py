"""The container image (hadolint, and its instructions read by a Dockerfile parser) and the
one-host compose file (the Compose Specification's JSON schema, and its configuration loads)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from jsonschema import Draft202012Validator

from app.settings import load_settings
from tests.infra.tools import INFRA, need_tool, run

HOLDFAST_SERVICES = {"migrate", "app", "worker", "scheduler"}
# Values for the compose file's ${VARIABLES}, as infra/.env would give them.
DOTENV = {
    "HOLDFAST_SECRET_KEY": "0123456789abcdef" * 4,
    "POSTGRES_PASSWORD": "pg-secret",
    "MINIO_ROOT_PASSWORD": "minio-secret",
}


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's schema, as check-jsonschema vendors it (Apache-2.0)."""
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((INFRA / "compose.yaml").read_text())
    return document


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(compose_schema())
    errors = validator.iter_errors(document)
    return [f"{list(error.absolute_path)}: {error.message}" for error in errors]


def interpolated(value: str) -> str:
    """Compose's `${NAME}`, `${NAME:?message}` and `${NAME:-default}`, from DOTENV."""

    def one(match: re.Match[str]) -> str:
        name, operator, word = match.group(1), match.group(2), match.group(3)
        if name in DOTENV:
            return DOTENV[name]
        assert operator == ":-", f"{name} is required and not in infra/compose.env.example"
        return word

    return re.sub(r"\$\{(\w+)(?:(:[?-])([^}]*))?\}", one, value)


def test_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_refuses_a_broken_compose_file() -> None:
    broken = compose()
    broken["services"]["app"]["depends_on"]["migrate"]["condition"] = "service_done"
    broken["services"]["worker"]["stop_grace_period"] = {"seconds": 45}

    errors = schema_errors(broken)

    assert len(errors) >= 2


def test_compose_runs_every_role_after_migrations() -> None:
    services = compose()["services"]

    assert {"migrate", "app", "worker", "scheduler", "postgres", "redis", "minio"} <= set(services)
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["app"]["command"][0] == "serve"
    assert services["worker"]["command"] == ["worker"]
    assert services["scheduler"]["command"] == ["scheduler"]
    assert services["scheduler"]["deploy"]["replicas"] == 1
    for name in HOLDFAST_SERVICES - {"migrate"}:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("app", "postgres", "redis", "minio"):
        assert services[name]["healthcheck"]["test"], name
    assert services["app"]["ports"] == ["127.0.0.1:8000:8000"]


def test_compose_configuration_loads_with_s3_storage_at_minio(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    """What the app container gets is a valid configuration, media in the MinIO bucket the
    `bucket` service creates."""
    services = compose()["services"]
    for key, value in services["app"]["environment"].items():
        if key.startswith("HOLDFAST_"):
            monkeypatch_env.setenv(key, interpolated(str(value)))

    settings = load_settings()

    assert settings.is_production
    assert settings.database_url == "postgres://holdfast:pg-secret@postgres:5432/holdfast"
    media = settings.storage.backends[settings.storage.default]
    assert media.provider == "s3"
    assert media.options["endpoint_url"] == "http://minio:9000"
    assert media.options["secret_access_key"] == DOTENV["MINIO_ROOT_PASSWORD"]
    bucket = services["bucket"]["entrypoint"]
    assert bucket[-1] == f"store/{media.options['bucket']}"
    assert settings.jobs.work_in_web is False
    assert settings.jobs.schedule_in_web is False  # the scheduler service schedules


def test_compose_env_example_names_every_required_variable() -> None:
    text = (INFRA / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {
        line.split("=", 1)[0]
        for line in (INFRA / "compose.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }

    assert required == set(DOTENV) == example


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else need_tool("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    result = run(hadolint(), "--no-color", INFRA / "Dockerfile")

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    text = (INFRA / "Dockerfile").read_text()
    broken.write_text(text.replace("WORKDIR /src", "RUN cd /src"))

    result = run(hadolint(), "--no-color", broken)

    assert result.returncode != 0
    assert "DL3003" in result.stdout


def test_image_is_multi_stage_non_root_with_the_holdfast_entrypoint(tmp_path: Path) -> None:
    shutil.copy(INFRA / "Dockerfile", tmp_path / "Dockerfile")
    parser = DockerfileParser(path=str(tmp_path))

    stages = [item for item in parser.structure if item["instruction"] == "FROM"]
    assert len(stages) == 2
    assert "COPY --from=build /opt/holdfast/.venv" in parser.content
    final = parser.structure[parser.structure.index(stages[-1]) :]
    users = [item["value"] for item in final if item["instruction"] == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}
    entrypoint = [item["value"] for item in final if item["instruction"] == "ENTRYPOINT"]
    assert json.loads(entrypoint[-1]) == ["holdfast"]
    cmd = [item["value"] for item in final if item["instruction"] == "CMD"]
    assert json.loads(cmd[-1]) == ["serve", "--no-migrate"]
    # pg_dump from PostgreSQL's repository at a current major, not bookworm's 15 (which
    # refuses newer servers).
    runs = " ".join(item["value"] for item in final if item["instruction"] == "RUN")
    assert "/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y" in runs
    assert '"postgresql-client-${PG_CLIENT_MAJOR}"' in runs
    assert "PG_CLIENT_MAJOR=17" in parser.content


def test_build_context_keeps_out_everything_but_the_package(tmp_path: Path) -> None:
    ignore = (INFRA / "Dockerfile.dockerignore").read_text().splitlines()

    assert "*" in ignore
    copied = re.findall(r"^COPY (?!--from)(\S+)", (INFRA / "Dockerfile").read_text(), re.M)
    for source in copied:
        assert f"!{source.rstrip('/')}/" in ignore or f"!{source}" in ignore, source
