"""User-data that turns a fresh Debian or Ubuntu node into a Holdfast node of one role.

`holdfast fleet apply` passes it to the compute provider when it creates a node; cloud-init
on the node installs the package into a virtualenv, writes the environment file, the role's
systemd unit (and, on web nodes, the nginx site) and starts it. The unit files and the nginx
site are the ones in `infra/` (package data in `app/hosting/files/`), so a node runs exactly
what the repository documents.

The environment file carries the fleet's secrets (database and Redis URLs, the signing key,
storage credentials), so the user-data does too: anyone who can read the instance's metadata
(the vendor's console and API, any process on the node that can reach the metadata service)
can read them. Never log or print the rendered document.

The document is built as data from a template (`files/cloud-config.yaml`) and dumped with
PyYAML, never assembled as text, so any value (a password with a quote, a colon, a newline)
comes out escaped.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import yaml

from app.settings import ROLES, ComputeProviderSettings, Role, Settings

VENV = "/opt/holdfast/.venv"
DATA_DIR = "/var/lib/holdfast"
ENV_FILE = "/etc/holdfast/holdfast.env"
TLS_DIR = "/etc/holdfast/tls"
PG_CLIENT_MAJOR = 17
PG_CLIENT = f"postgresql-client-{PG_CLIENT_MAJOR}"
PGDG_SCRIPT = "/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh"
TLS_CERTIFICATE = f"{TLS_DIR}/fullchain.pem"
TLS_CERTIFICATE_KEY = f"{TLS_DIR}/privkey.pem"
NGINX_SITE = "/etc/nginx/sites-available/holdfast"
ACME_ROOT = "/var/www/letsencrypt"
APP_PORT = 8000  # nginx-holdfast.conf proxies to 127.0.0.1:8000

UNITS: Mapping[Role, str] = {
    "web": "holdfast.service",
    "worker": "holdfast-worker.service",
    "scheduler": "holdfast-scheduler.service",
}
NGINX_TEMPLATE = "nginx-holdfast.conf"
CLOUD_CONFIG_TEMPLATE = "cloud-config.yaml"

# Set by the fleet itself from the compute configuration and the node's role; a compute
# configuration's `env` naming one of these is a mistake, refused rather than guessed at.
_FLEET_KEYS = frozenset(
    {
        "HOLDFAST_ENV",
        "HOLDFAST_DATABASE_URL",
        "HOLDFAST_REDIS_URL",
        "HOLDFAST_DATA_DIR",
        "HOLDFAST_HOST",
        "HOLDFAST_PORT",
        "HOLDFAST_WEB_REPLICAS",
        # Every process of every node leases its own node id; one assigned id on several
        # nodes would make the same ids twice.
        "HOLDFAST_NODE_ID",
    }
)
_ENV_NAME = re.compile(r"HOLDFAST_[A-Z0-9_]+")
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
)


class UserDataError(ValueError):
    """The settings cannot make a node's user-data; the message names the setting."""


def package_file(name: str) -> str:
    """A deployment file shipped with the package (`app/hosting/files/NAME`)."""
    return files("app.hosting").joinpath("files", name).read_text(encoding="utf-8")


def client_max_body_size(settings: Settings) -> int:
    """The largest request body the application accepts (app/main.py's BodySizeLimit): a
    GraphQL multipart upload, the file plus a form as large as any other request."""
    return settings.media.max_upload_bytes + settings.http.max_body_bytes


def render_nginx_site(
    settings: Settings,
    *,
    certificate: str = TLS_CERTIFICATE,
    certificate_key: str = TLS_CERTIFICATE_KEY,
) -> str:
    """The nginx site for a web node: TLS for `fleet.domain` (any name when unset), HTTP
    redirected to HTTPS, WebSockets on /graphql, bodies as large as the application takes."""
    domain = settings.fleet.domain
    if domain is not None and not _HOST_NAME.fullmatch(domain):
        raise UserDataError(f"fleet.domain (HOLDFAST_FLEET__DOMAIN) is not a host name: {domain!r}")
    for name, path in (("certificate", certificate), ("certificate_key", certificate_key)):
        if not re.fullmatch(r"/[A-Za-z0-9._/-]+", path):
            raise UserDataError(f"the TLS {name} must be an absolute path: {path!r}")
    values = {
        "SERVER_NAME": domain or "_",
        "TLS_CERTIFICATE": certificate,
        "TLS_CERTIFICATE_KEY": certificate_key,
        "CLIENT_MAX_BODY_SIZE": str(client_max_body_size(settings)),
    }
    text = package_file(NGINX_TEMPLATE)
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    return text


def node_environment(settings: Settings, compute: str, role: Role) -> dict[str, str]:
    """The environment (`/etc/holdfast/holdfast.env`) of a node of `role` at the compute
    configuration `compute`: its database, Redis and `env`, production mode, the signing key
    every node shares, and where jobs run. Holds secrets: never log it."""
    config = _compute(settings, compute)
    if role not in ROLES:
        raise UserDataError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    where = f"compute.providers.{compute}"
    environment: dict[str, str] = {}
    for key, secret in config.env.items():
        name = key.upper()
        if not _ENV_NAME.fullmatch(name):
            raise UserDataError(f"{where}.env: {key!r} is not a HOLDFAST_* setting")
        if name in _FLEET_KEYS:
            raise UserDataError(
                f"{where}.env: {name} is set by the fleet itself (from {where} and the role)"
            )
        environment[name] = secret.get_secret_value()

    nodes = sum(spec.count for spec in config.roles.values())
    if config.database_url is None and nodes > 1:
        raise UserDataError(
            f"{where}.database_url is required: the fleet's {nodes} nodes share one database "
            "(SQLite is one file on one machine)"
        )
    fleet: dict[str, str] = {
        "HOLDFAST_ENV": "production",
        "HOLDFAST_DATA_DIR": DATA_DIR,
        "HOLDFAST_HOST": "127.0.0.1",
        "HOLDFAST_PORT": str(APP_PORT),
    }
    if config.database_url is not None:
        fleet["HOLDFAST_DATABASE_URL"] = config.database_url.get_secret_value()
    if config.redis_url is not None:
        fleet["HOLDFAST_REDIS_URL"] = config.redis_url.get_secret_value()
    web = config.roles.get("web")
    fleet["HOLDFAST_WEB_REPLICAS"] = str(max(web.count, 1) if web is not None else 1)
    worker = config.roles.get("worker")
    if worker is not None and worker.count > 0:
        # Worker nodes run the jobs; web nodes then only serve.
        environment.setdefault("HOLDFAST_JOBS__WORK_IN_WEB", "false")
    scheduler = config.roles.get("scheduler")
    if scheduler is not None and scheduler.count > 0:
        # The scheduler node schedules the backups; web nodes then do not.
        environment.setdefault("HOLDFAST_JOBS__SCHEDULE_IN_WEB", "false")
    environment.update(_storage_environment(settings, config.storage, environment))
    if "HOLDFAST_SECRET_KEY" not in environment:
        if settings.secret_key is None:
            raise UserDataError(
                f"the nodes need one signing key: set secret_key (HOLDFAST_SECRET_KEY) or "
                f"{where}.env.HOLDFAST_SECRET_KEY"
            )
        environment["HOLDFAST_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return {**fleet, **environment}


def _storage_environment(
    settings: Settings, storage: str | None, environment: Mapping[str, str]
) -> dict[str, str]:
    """Where the nodes keep media and backups: the configuration's `storage` backend as their
    default, and the backup backend, each defined on the node as the operator defined it here
    (a JSON value, which the settings read like nested keys). Without it a node would write
    media and backups to its own disk, which leaves with the vendor. Nothing when the
    configuration's `env` already sets storage or backup settings itself."""
    if any(key.startswith(("HOLDFAST_STORAGE__", "HOLDFAST_BACKUP__")) for key in environment):
        return {}
    names = [name for name in (storage, settings.backup.storage) if name is not None]
    if not names:
        return {}
    backends = {
        name: {
            "provider": settings.storage.backends[name].provider,
            "options": settings.storage.backends[name].options,
        }
        for name in dict.fromkeys(names)
    }
    result = {"HOLDFAST_STORAGE__BACKENDS": json.dumps(backends, default=str)}
    if storage is not None:
        result["HOLDFAST_STORAGE__DEFAULT"] = storage
    if settings.backup.storage is not None:
        result["HOLDFAST_BACKUP__STORAGE"] = settings.backup.storage
    return result


def env_file(environment: Mapping[str, str]) -> str:
    """An environment file systemd's `EnvironmentFile=` reads back exactly: every value in
    double quotes, with backslash, double quote, `$` and backquote escaped."""
    lines = ["# Written by cloud-init (app/hosting/userdata.py). Secrets: root only (0600)."]
    for name, value in environment.items():
        if "\n" in value or "\r" in value:
            raise UserDataError(f"{name}: a value cannot span lines")
        escaped = re.sub(r'([\\"$`])', r"\\\1", value)
        lines.append(f'{name}="{escaped}"')
    return "\n".join(lines) + "\n"


def render_user_data(settings: Settings, compute: str, role: Role) -> str:
    """The `#cloud-config` document that installs and starts Holdfast for `role` on a fresh
    Debian or Ubuntu node of the compute configuration `compute`. Contains secrets."""
    environment = node_environment(settings, compute, role)
    unit = UNITS[role]
    document: dict[str, Any] = yaml.safe_load(package_file(CLOUD_CONFIG_TEMPLATE))
    files_: list[dict[str, str]] = [
        {
            "path": ENV_FILE,
            "owner": "root:root",
            "permissions": "0600",
            "content": env_file(environment),
        },
        {
            "path": f"/etc/systemd/system/{unit}",
            "permissions": "0644",
            "content": package_file(unit),
        },
    ]
    commands: list[list[str]] = [
        ["install", "-d", "-o", "holdfast", "-g", "holdfast", "-m", "0750", DATA_DIR],
        # pg_dump/pg_restore for backups (they run wherever jobs run, so on every role): a
        # current major from PostgreSQL's own repository (PGDG, its key shipped in Debian's
        # postgresql-common), as a pg_dump refuses servers newer than itself.
        [PGDG_SCRIPT, "-y"],
        ["apt-get", "install", "-y", "--no-install-recommends", PG_CLIENT],
        ["python3", "-m", "venv", VENV],
        [
            f"{VENV}/bin/pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--retries",
            "10",
            "--timeout",
            "60",
            settings.fleet.package,
        ],
    ]
    if role == "web":
        document["packages"] += ["nginx", "openssl"]
        files_.append(
            {"path": NGINX_SITE, "permissions": "0644", "content": render_nginx_site(settings)}
        )
        commands += [
            # A self-signed certificate, so that nginx starts and the fleet's health check
            # (HTTPS to the node's address) answers at once; replace it with a real one
            # (certbot --webroot -w /var/www/letsencrypt) once DNS points here.
            ["install", "-d", "-m", "0700", TLS_DIR],
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "90",
                "-subj",
                f"/CN={settings.fleet.domain or 'holdfast'}",
                "-keyout",
                TLS_CERTIFICATE_KEY,
                "-out",
                TLS_CERTIFICATE,
            ],
            ["install", "-d", ACME_ROOT],
            ["ln", "-sf", NGINX_SITE, "/etc/nginx/sites-enabled/holdfast"],
            ["rm", "-f", "/etc/nginx/sites-enabled/default"],
            ["systemctl", "reload-or-restart", "nginx"],
        ]
    commands += [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", unit],
    ]
    document["write_files"] = files_
    # One `sh -e` script, not one runcmd entry a command: cloud-init runs the entries on past
    # a failure, and a failed install must never leave an enabled unit behind.
    script = "\n".join(shlex.join(command) for command in commands)
    document["runcmd"] = [["sh", "-ec", script]]
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1_000, allow_unicode=True)
    return (
        "#cloud-config\n"
        f"# Holdfast {role} node of {settings.fleet.name} at {compute}. Contains secrets (the\n"
        "# environment file): whoever reads this instance's metadata reads them.\n" + body
    )


def _compute(settings: Settings, compute: str) -> ComputeProviderSettings:
    config = settings.compute.providers.get(compute)
    if config is None:
        known = ", ".join(sorted(settings.compute.providers)) or "none"
        raise UserDataError(f"compute.providers has no configuration {compute!r} ({known})")
    return config


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with file contents as literal blocks (readable in the vendor's console);
    PyYAML falls back to a quoted style where a block cannot hold a value exactly."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
