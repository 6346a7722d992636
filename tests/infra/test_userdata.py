"""A fleet node's cloud-init user-data per role: valid for cloud-init, and what it installs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.hosting.userdata import (
    ENV_FILE,
    NGINX_SITE,
    UNITS,
    UserDataError,
    env_file,
    node_environment,
    render_user_data,
)
from app.settings import ROLES, Role, Settings, load_settings
from tests.infra.tools import need_tool, run

# Characters a shell, systemd or YAML would each take for syntax.
TRICKY_PASSWORD = "p'a\"s$HOME`id`\\:# {x}: - &y *z"
SECRET_KEY = "k" * 48


def fleet_settings(**compute: Any) -> Settings:
    config: dict[str, Any] = {
        "provider": "libcloud",
        "database_url": f"postgres://holdfast:{TRICKY_PASSWORD}@db.internal:5432/holdfast",
        "redis_url": "redis://:sesame@redis.internal:6379/0",
        "env": {
            "HOLDFAST_STORAGE__BACKENDS__MEDIA__PROVIDER": "s3",
            "HOLDFAST_STORAGE__BACKENDS__MEDIA__OPTIONS__BUCKET": "holdfast-media",
            "HOLDFAST_STORAGE__BACKENDS__MEDIA__OPTIONS__SECRET_ACCESS_KEY": "s3-secret",
            "HOLDFAST_STORAGE__DEFAULT": "media",
            "holdfast_auth__signups_per_ip": "10/15 minutes",
        },
        "roles": {
            "web": {"count": 2, "size": "t3.small", "image": "ami-debian"},
            "worker": {"count": 1, "size": "t3.small", "image": "ami-debian"},
            "scheduler": {"count": 1, "size": "t3.micro", "image": "ami-debian"},
        },
    }
    config.update(compute)
    return Settings(
        secret_key=SECRET_KEY,
        fleet={"name": "social", "package": "holdfast==0.1.0", "domain": "social.example.org"},
        compute={"providers": {"aws": config}},
    )


def written(document: dict[str, Any], path: str) -> dict[str, Any]:
    matches = [entry for entry in document["write_files"] if entry["path"] == path]
    assert len(matches) == 1, path
    return matches[0]


def parsed_env_file(text: str, tmp_path: Path) -> dict[str, str]:
    """The variables a POSIX shell reads from the file: systemd's EnvironmentFile= takes
    double-quoted values with the same escapes."""
    path = tmp_path / "holdfast.env"
    path.write_text(text)
    result = run("env", "-i", "sh", "-c", f'set -a; . "{path}"; exec env -0')
    assert result.returncode == 0, result.stderr
    pairs = (item.split("=", 1) for item in result.stdout.split("\0") if item)
    return {key: value for key, value in pairs if key.startswith("HOLDFAST_")}


@pytest.mark.parametrize("role", ROLES)
def test_user_data_is_valid_cloud_config(
    role: Role, tmp_path: Path, monkeypatch_env: pytest.MonkeyPatch
) -> None:
    cloud_init = need_tool("cloud-init")
    path = tmp_path / f"{role}.yaml"
    path.write_text(render_user_data(fleet_settings(), "aws", role))

    result = run(cloud_init, "schema", "--config-file", path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid" in result.stdout


def test_cloud_init_schema_refuses_a_broken_document(tmp_path: Path) -> None:
    """The check above can fail: a file to write without a path is not cloud-config."""
    cloud_init = need_tool("cloud-init")
    path = tmp_path / "broken.yaml"
    path.write_text("#cloud-config\nwrite_files:\n  - content: hello\n    permissions: 600\n")

    result = run(cloud_init, "schema", "--config-file", path)

    assert result.returncode != 0


@pytest.mark.parametrize("role", ROLES)
def test_user_data_installs_and_enables_the_role(
    role: Role, monkeypatch_env: pytest.MonkeyPatch
) -> None:
    text = render_user_data(fleet_settings(), "aws", role)
    document = yaml.safe_load(text)

    assert text.startswith("#cloud-config\n")
    assert len(text.encode()) < 16_384  # EC2's limit on user-data
    assert "python3-venv" in document["packages"]
    assert "postgresql-common" in document["packages"]
    assert any(user != "default" and user["name"] == "holdfast" for user in document["users"])
    # One `sh -e` script: a failed step (pip install) stops it before the unit is enabled.
    ((shell, flags, script),) = document["runcmd"]
    assert (shell, flags) == ("sh", "-ec")
    commands = [shlex.split(line) for line in script.splitlines()]
    pip = ["/opt/holdfast/.venv/bin/pip", "install", "--quiet", "--disable-pip-version-check"]
    assert [*pip, "--retries", "10", "--timeout", "60", "holdfast==0.1.0"] in commands
    # pg_dump for backups on every role, a current major from PostgreSQL's repository
    # (bookworm's own client, 15, refuses newer servers).
    pgdg = commands.index(["/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh", "-y"])
    client = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql-client-17"]
    assert commands.index(client) > pgdg
    assert commands[-1] == ["systemctl", "enable", "--now", UNITS[role]]
    unit = written(document, f"/etc/systemd/system/{UNITS[role]}")
    assert "/opt/holdfast/.venv/bin/holdfast" in unit["content"]
    others = {name for other, name in UNITS.items() if other != role}
    assert not any(entry["path"].endswith(tuple(others)) for entry in document["write_files"])
    secrets = written(document, ENV_FILE)
    assert secrets["permissions"] == "0600"
    assert secrets["owner"] == "root:root"
    if role == "web":
        assert {"nginx", "openssl"} <= set(document["packages"])
        site = written(document, NGINX_SITE)["content"]
        assert "server_name social.example.org;" in site
        assert ["ln", "-sf", NGINX_SITE, "/etc/nginx/sites-enabled/holdfast"] in commands
    else:
        assert "nginx" not in document["packages"]


def test_the_environment_file_reads_back_exactly_and_loads(
    tmp_path: Path, monkeypatch_env: pytest.MonkeyPatch
) -> None:
    document = yaml.safe_load(render_user_data(fleet_settings(), "aws", "worker"))

    environment = parsed_env_file(written(document, ENV_FILE)["content"], tmp_path)

    assert environment == {
        "HOLDFAST_ENV": "production",
        "HOLDFAST_DATA_DIR": "/var/lib/holdfast",
        "HOLDFAST_HOST": "127.0.0.1",
        "HOLDFAST_PORT": "8000",
        "HOLDFAST_DATABASE_URL": f"postgres://holdfast:{TRICKY_PASSWORD}@db.internal:5432/holdfast",
        "HOLDFAST_REDIS_URL": "redis://:sesame@redis.internal:6379/0",
        "HOLDFAST_WEB_REPLICAS": "2",
        "HOLDFAST_STORAGE__BACKENDS__MEDIA__PROVIDER": "s3",
        "HOLDFAST_STORAGE__BACKENDS__MEDIA__OPTIONS__BUCKET": "holdfast-media",
        "HOLDFAST_STORAGE__BACKENDS__MEDIA__OPTIONS__SECRET_ACCESS_KEY": "s3-secret",
        "HOLDFAST_STORAGE__DEFAULT": "media",
        "HOLDFAST_AUTH__SIGNUPS_PER_IP": "10/15 minutes",
        "HOLDFAST_JOBS__WORK_IN_WEB": "false",
        "HOLDFAST_JOBS__SCHEDULE_IN_WEB": "false",
        "HOLDFAST_SECRET_KEY": SECRET_KEY,
    }
    for key, value in environment.items():
        monkeypatch_env.setenv(key, value)
    loaded = load_settings()
    assert loaded.is_production
    assert loaded.web_replicas == 2
    assert loaded.storage.default == "media"
    assert loaded.auth.signups_per_ip == "10/15 minutes"
    assert loaded.jobs.work_in_web is False
    assert loaded.jobs.schedule_in_web is False


def test_env_file_escapes_what_a_shell_or_systemd_would_expand(tmp_path: Path) -> None:
    values = {"HOLDFAST_A": TRICKY_PASSWORD, "HOLDFAST_B": "", "HOLDFAST_C": "  spaced  "}

    assert parsed_env_file(env_file(values), tmp_path) == values
    with pytest.raises(UserDataError, match="HOLDFAST_D"):
        env_file({"HOLDFAST_D": "two\nlines"})


def test_web_nodes_run_jobs_when_the_fleet_has_no_workers(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    settings = fleet_settings(
        roles={
            "web": {"count": 1, "size": "s", "image": "i"},
            "scheduler": {"count": 1, "size": "s", "image": "i"},
        }
    )

    environment = node_environment(settings, "aws", "web")

    assert "HOLDFAST_JOBS__WORK_IN_WEB" not in environment
    assert environment["HOLDFAST_WEB_REPLICAS"] == "1"
    # The scheduler node schedules the backups: the web nodes do not.
    assert environment["HOLDFAST_JOBS__SCHEDULE_IN_WEB"] == "false"


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        ({"env": {"DATABASE_URL": "x"}}, "'DATABASE_URL' is not a HOLDFAST_\\* setting"),
        ({"env": {"HOLDFAST_DATABASE_URL": "x"}}, "HOLDFAST_DATABASE_URL is set by the fleet"),
        ({"env": {"HOLDFAST_NODE_ID": "3"}}, "HOLDFAST_NODE_ID is set by the fleet"),
        (
            {
                "database_url": None,
                "roles": {
                    "web": {"count": 1, "size": "s", "image": "i"},
                    "scheduler": {"count": 1, "size": "s", "image": "i"},
                },
            },
            "compute.providers.aws.database_url is required",
        ),
    ],
)
def test_bad_compute_configuration_is_refused(
    compute: dict[str, Any], message: str, monkeypatch_env: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UserDataError, match=message):
        render_user_data(fleet_settings(**compute), "aws", "web")


def test_unknown_compute_configuration_and_missing_key_are_refused(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    settings = fleet_settings()
    with pytest.raises(UserDataError, match="no configuration 'gcp' \\(aws\\)"):
        render_user_data(settings, "gcp", "web")

    keyless = settings.model_copy(update={"secret_key": None})
    with pytest.raises(UserDataError, match="one signing key"):
        render_user_data(keyless, "aws", "worker")


def test_a_domain_that_is_not_a_host_name_never_reaches_nginx(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    settings = fleet_settings()
    bad = settings.fleet.model_copy(update={"domain": "x; include /etc/shadow"})

    with pytest.raises(UserDataError, match=r"fleet\.domain"):
        render_user_data(settings.model_copy(update={"fleet": bad}), "aws", "web")


def test_nodes_get_the_configurations_storage_and_the_backup_storage(
    tmp_path: Path, monkeypatch_env: pytest.MonkeyPatch
) -> None:
    """A configuration's `storage` (where evacuate moves media) becomes its nodes' default,
    defined on the nodes as here, and backups go where `backup.storage` says: else a node
    would write media and backups to its own disk, which leaves with the vendor."""
    compute = (
        fleet_settings(env={}).compute.providers["aws"].model_copy(update={"storage": "media-b"})
    )
    settings = Settings(
        secret_key=SECRET_KEY,
        compute={"providers": {"aws": compute}},
        storage={
            "backends": {
                "media-b": {
                    "provider": "s3",
                    "options": {"bucket": "media", "secret_access_key": "s3-secret"},
                },
                "backups": {"provider": "s3", "options": {"bucket": "backups"}},
            }
        },
        backup={"storage": "backups"},
    )
    document = yaml.safe_load(render_user_data(settings, "aws", "worker"))

    environment = parsed_env_file(written(document, ENV_FILE)["content"], tmp_path)

    assert environment["HOLDFAST_STORAGE__DEFAULT"] == "media-b"
    assert environment["HOLDFAST_BACKUP__STORAGE"] == "backups"
    for key, value in environment.items():
        monkeypatch_env.setenv(key, value)
    loaded = load_settings()
    assert loaded.storage.default == "media-b"
    assert loaded.backup.storage == "backups"
    assert loaded.storage.backends["media-b"].options == {
        "bucket": "media",
        "secret_access_key": "s3-secret",
    }
    assert loaded.storage.backends["backups"].options == {"bucket": "backups"}
