"""Typed settings, read once: environment variables `HOLDFAST_*`, then an optional `holdfast.toml`.

Nested settings use a double underscore (`HOLDFAST_AUTH__ACCESS_TOKEN_TTL=600`). An unknown or
invalid setting is a start-up error that names the key (`SettingsError`).
"""

from __future__ import annotations

import math
import os
import re
import secrets
import string
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "HOLDFAST_"
CONFIG_FILE_ENV = "HOLDFAST_CONFIG_FILE"
SECRET_FILE_NAME = "secret_key"  # noqa: S105 (a file name)
# Seconds added to the longest a media.process job can take through its retries
# (Settings.processing_timeout).
PROCESSING_MARGIN = 3_600


class SettingsError(Exception):
    """A setting is unknown or invalid; the message names the key."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_rate(value: str) -> str:
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ValueError(f"not a rate like '10/minute': {value!r}") from None
    return value


Rate = Annotated[str, AfterValidator(_is_rate)]
"""A rate in the `limits` notation: `10/minute`, `5/hour`, `10/15 minutes`."""


class AuthSettings(_Section):
    access_token_ttl: int = Field(900, ge=60, le=86_400, description="seconds")
    refresh_token_ttl: int = Field(30 * 86_400, ge=3_600, le=365 * 86_400, description="seconds")
    login_attempts_per_account: Rate = "10/15 minutes"
    login_attempts_per_ip: Rate = "30/minute"
    signups_per_ip: Rate = Field("5/hour", description="sign-up attempts per client address")


class PostSettings(_Section):
    max_length: int = Field(500, ge=1, le=100_000, description="characters of post text")


class TimelineSettings(_Section):
    fanout_max_followers: int = Field(
        10_000, ge=0, description="above this many followers, posts merge in at read time"
    )
    home_max_entries: int = Field(800, ge=20, description="entries kept per home timeline")


class GraphQLSettings(_Section):
    max_depth: int = Field(12, ge=1, le=64)
    max_aliases: int = Field(15, ge=0, le=1_000)
    max_tokens: int = Field(2_000, ge=100, le=100_000)
    max_document_bytes: int = Field(32_768, ge=1_024, le=1_048_576, description="before parsing")
    max_cost: int = Field(
        10_000, ge=100, le=10_000_000, description="fields, multiplied by page sizes"
    )
    max_repeated_fields: int = Field(
        20, ge=2, le=1_000, description="fields with one response name in one selection"
    )
    max_fragments: int = Field(
        32, ge=1, le=1_000, description="fragments spread (through others too) into one selection"
    )
    cache_size: int = Field(1_024, ge=1, le=100_000)
    executor: Literal["fast", "stock"] = Field(
        "fast",
        description="fast: fields that are plain attributes are completed inline and persisted "
        "operations run precompiled; stock: graphql-core's executor for everything (the same "
        "answers, slower: the switch back if the fast one is ever suspected)",
    )
    persisted_queries: bool = Field(
        True,
        description="automatic persisted queries (extensions.persistedQuery.sha256Hash, the "
        "protocol of Apollo and urql clients)",
    )
    trusted_documents: bool = Field(
        False,
        description="only operations registered with `holdfast operations register` run; any "
        "other document is refused (production)",
    )
    registered_refresh_seconds: float = Field(
        2.0,
        ge=0,
        le=300,
        description="how long a process goes by the list of registered operations it read before "
        "reading it again: how soon `holdfast operations register` and `remove` take effect (0: "
        "whenever a request needs it, for tests)",
    )
    requests_per_viewer: Rate = Field(
        "600/minute",
        description="GraphQL HTTP requests and WebSocket operations per account, or per "
        "address signed out",
    )


DEFAULT_JOB_CONCURRENCY = 4


class JobSettings(_Section):
    work_in_web: bool = Field(
        True, description="`holdfast serve` processes run jobs too (off: only `holdfast worker`)"
    )
    schedule_in_web: bool = Field(
        True,
        description="`holdfast serve` processes schedule backups too, one at a time under "
        "the scheduler lease (off where a `holdfast scheduler` runs)",
    )
    concurrency: int = Field(
        DEFAULT_JOB_CONCURRENCY,
        ge=1,
        le=256,
        description="jobs a process runs at once (default 1 on SQLite)",
    )
    max_attempts: int = Field(8, ge=1, le=100, description="then the job is dead")
    lease_seconds: float = Field(
        30.0, ge=0.2, le=3_600, description="after this, a job whose worker vanished runs again"
    )
    backoff_first_seconds: float = Field(2.0, ge=0.01, le=3_600, description="first retry delay")
    backoff_max_seconds: float = Field(600.0, ge=0.01, le=86_400, description="longest delay")
    poll_seconds: float = Field(
        2.0, ge=0.05, le=300, description="how often a worker looks for jobs without a wake-up"
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, le=3_600, description="on SIGTERM, how long running jobs may take to finish"
    )
    keep_done_seconds: int = Field(
        86_400, ge=0, le=90 * 86_400, description="how long finished jobs stay in the table"
    )

    def longest_retries(self) -> float:
        """Seconds from a job's first claim until it is dead at the latest, when each attempt
        fails only as its lease runs out: `max_attempts` leases and the longest backoff before
        each retry (app/jobs/queue.py `backoff`). A stage that renews its lease can take
        longer; callers add a margin."""
        waits = sum(self.backoff_ceiling(attempt) for attempt in range(1, self.max_attempts))
        return self.max_attempts * self.lease_seconds + waits

    def backoff_ceiling(self, attempt: int) -> float:
        """The longest wait before retrying after failed attempt number `attempt` (1, 2, ...):
        doubling from `backoff_first_seconds` up to `backoff_max_seconds`."""
        return min(
            self.backoff_max_seconds, self.backoff_first_seconds * 2.0 ** min(attempt - 1, 60)
        )


class HttpSettings(_Section):
    max_body_bytes: int = Field(
        1_048_576, ge=1_024, le=1_073_741_824, description="larger request bodies get 413"
    )
    graceful_shutdown_seconds: int = Field(
        30, ge=0, le=3_600, description="how long requests in flight may finish after SIGTERM"
    )


class NodeSettings(_Section):
    """Leases of snowflake node ids (see app/nodes.py)."""

    lease_seconds: float = Field(
        30, ge=0.5, le=3_600, description="how long a lease lasts unless renewed"
    )
    renew_seconds: float = Field(
        10, ge=0.1, le=1_800, description="how often a process renews its lease"
    )
    first_id: int = Field(0, ge=0, le=1023, description="lowest node id to lease")
    last_id: int = Field(1023, ge=0, le=1023, description="highest node id to lease")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.renew_seconds * 2 > self.lease_seconds:
            raise ValueError("renew_seconds must be at most half of lease_seconds")
        if self.first_id > self.last_id:
            raise ValueError("first_id must not be above last_id")
        return self


class LiveSettings(_Section):
    """Subscriptions over WebSocket (README: Live updates)."""

    queue_size: int = Field(
        100,
        ge=1,
        le=10_000,
        description="messages waiting to be sent on one connection (and events waiting in "
        "one subscription); a client that lets it fill is disconnected",
    )
    max_subscriptions: int = Field(
        20, ge=1, le=1_000, description="operations running at once on one connection"
    )
    ping_interval: float = Field(20.0, gt=0, le=3_600, description="seconds between pings")
    ping_timeout: float = Field(
        20.0, gt=0, le=3_600, description="seconds a pong may take before the socket closes"
    )
    init_timeout: float = Field(
        10.0, gt=0, le=600, description="seconds a client has to send connection_init"
    )
    allowed_origins: tuple[str, ...] = Field(
        ("*",), description="origins whose pages may connect (browsers send Origin)"
    )


_SECRET_WORDS = ("secret", "password", "token", "key")
MASKED = "**********"


def is_secret_option(name: str) -> bool:
    """Whether a provider option's name says it holds a credential (`secret_access_key`,
    `password`, `api_token`, `key`), not an identifier (`access_key_id`)."""
    lowered = name.lower()
    return not lowered.endswith("_id") and any(word in lowered for word in _SECRET_WORDS)


def _masked(options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: MASKED
        if is_secret_option(str(name))
        else _masked(value)
        if isinstance(value, Mapping)
        else value
        for name, value in options.items()
    }


class ProviderSettings(_Section):
    """One configuration of a provider (storage, payments): a provider by registry name and
    its options (checked against the provider's own options when the application starts).

    The options go to the provider as given, credentials included; its `repr` and `str`
    (and so those of `Settings`, in a log line or a traceback) mask the values of options
    whose name says they are secret."""

    provider: str = Field(description="the provider's registry name")
    options: dict[str, Any] = Field(default_factory=dict, description="the provider's options")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, _masked(value) if name == "options" else value


class StorageBackendSettings(ProviderSettings):
    """One storage configuration: `local`, `s3`, `libcloud`, or one a package adds."""


DEFAULT_STORAGE_BACKEND = "local"


class StorageSettings(_Section):
    """Where stored objects (media) live (README: Storage)."""

    default: str = Field(
        DEFAULT_STORAGE_BACKEND, description="the backend new objects are written to"
    )
    backends: dict[str, StorageBackendSettings] = Field(
        default_factory=dict,
        description="named storage configurations; `local` (data_dir/media) is always there "
        "unless configured otherwise",
    )
    move_concurrency: int = Field(
        8, ge=1, le=256, description="objects `holdfast storage migrate` copies at once"
    )
    move_settle_seconds: int = Field(
        600,
        ge=0,
        le=7 * 86_400,
        description="a move finishes no sooner than this long after it started: longer than "
        "any single upload or media processing run, so that no write begun before the move "
        "(and so aimed at the old backend) can land after it finished",
    )
    move_lease_seconds: float = Field(
        60,
        ge=0.5,
        le=3_600,
        description="how long a `storage migrate` or `orphans --delete` run holds the storage "
        "lease unless renewed (a killed run's lease runs out after this)",
    )


class MediaSettings(_Section):
    """Uploaded images (README: Media)."""

    base_url: str | None = Field(
        None,
        description="where media URLs point (a CDN or an alias host, without a trailing "
        "slash); default: this server's /media",
    )
    max_upload_bytes: int = Field(
        10 * 1024 * 1024, ge=1_024, le=1_073_741_824, description="largest upload accepted"
    )
    max_pixels: int = Field(
        40_000_000, ge=1_000, le=1_000_000_000, description="largest image (width x height)"
    )
    max_attachments: int = Field(4, ge=0, le=100, description="media attached to one post")
    full_size: int = Field(2048, ge=16, le=16_384, description="longest side of the full image")
    thumb_size: int = Field(400, ge=16, le=4_096, description="longest side of the thumbnail")
    signed_url_ttl: int = Field(
        3_600, ge=60, le=7 * 86_400, description="seconds a signed media URL works"
    )
    upload_url_ttl: int = Field(
        900, ge=60, le=86_400, description="seconds a direct-upload URL works"
    )
    pending_ttl: int = Field(
        3_600,
        ge=60,
        le=7 * 86_400,
        description="seconds after its upload URL expired that a createUpload medium still "
        "waiting for its bytes is deleted",
    )
    unattached_ttl: int = Field(
        86_400,
        ge=60,
        le=365 * 86_400,
        description="seconds after it became ready (or failed) that a medium on no post and "
        "not an avatar or header is deleted",
    )
    processing_timeout: int | None = Field(
        None,
        ge=60,
        le=30 * 86_400,
        description="seconds after its file arrived that a medium still processing (its job "
        "died) fails with PROCESSING_FAILED; default: the longest every attempt of its job can "
        "take (jobs.max_attempts leases and backoffs) plus an hour",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.base_url is not None and not self.base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        if self.thumb_size > self.full_size:
            raise ValueError("thumb_size must not be above full_size")
        return self


class PaymentProviderSettings(ProviderSettings):
    """One payment configuration: `stripe`, `btcpay`, `manual`, or one a package adds."""

    accept_new: bool = Field(
        True,
        description="whether subscribers may start paying through it (false for a processor "
        "being left: its subscribers keep what they paid for and move on)",
    )


class PerkSettings(_Section):
    """What a plan gives beyond seeing SUBSCRIBERS posts (unset: the network's default)."""

    max_post_length: int | None = Field(
        None, ge=1, le=100_000, description="characters of post text"
    )
    max_attachments: int | None = Field(None, ge=0, le=100, description="media on one post")


class PlanSettings(_Section):
    """A premium plan (README: Payments)."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=500)
    interval: Literal["month", "year"] = "month"
    prices: dict[str, int] = Field(
        min_length=1,
        description="amount per interval by lower-case ISO 4217 currency, in its minor unit "
        "(`{eur = 500}` is EUR 5.00)",
    )
    perks: PerkSettings = PerkSettings()

    @model_validator(mode="after")
    def _prices(self) -> Self:
        for currency, amount in self.prices.items():
            if not re.fullmatch(r"[a-z]{3}", currency):
                raise ValueError(f"currency {currency!r} is not a lower-case ISO 4217 code")
            if not 1 <= amount <= 100_000_000:
                raise ValueError(f"price in {currency} must be 1..100000000 minor units")
        return self


class PaymentSettings(_Section):
    """Premium subscriptions (README: Payments)."""

    providers: dict[str, PaymentProviderSettings] = Field(
        default_factory=dict, description="named payment configurations"
    )
    plans: dict[str, PlanSettings] = Field(
        default_factory=dict, description="plans by code (a stable, operator-chosen name)"
    )
    renewal_lead_days: float = Field(
        3,
        ge=0,
        le=27,  # shorter than any month: a period is never charged before it began
        description="days before a period ends that its renewal is charged (or, where the "
        "payer must act, their invoice and reminder issued)",
    )
    grace_days: float = Field(
        7, ge=0, le=60, description="days access continues after a period ended unpaid"
    )
    retry_hours: float = Field(
        24, ge=0.01, le=24 * 30, description="hours between retries of a declined renewal"
    )
    return_url: str | None = Field(
        None, description="where a hosted payment page sends the payer back to"
    )

    @model_validator(mode="after")
    def _names(self) -> Self:
        for name in self.providers:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", name) or name == "complimentary":
                raise ValueError(f"payment configuration name {name!r} is not allowed")
        for code in self.plans:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", code):
                raise ValueError(f"plan code {code!r} must be lower-case letters, digits, - or _")
        return self


Role = Literal["web", "worker", "scheduler"]
ROLES: tuple[Role, ...] = ("web", "worker", "scheduler")


class RoleSpec(_Section):
    """How many nodes of one role run at a compute configuration, and what they are."""

    count: int = Field(1, ge=0, le=1_000, description="nodes of this role")
    size: str = Field(min_length=1, description="the vendor's size (instance type) id")
    image: str = Field(
        min_length=1, description="the vendor's image id: a Debian or Ubuntu with cloud-init"
    )
    location: str | None = Field(None, description="the vendor's region or zone id")


class ComputeProviderSettings(ProviderSettings):
    """One hosting configuration (README: Hosting): a compute provider (`libcloud`, or one a
    package adds) with its options, the fleet it runs, and where that fleet keeps its data
    (what `holdfast evacuate --to NAME` moves to)."""

    roles: dict[Role, RoleSpec] = Field(
        default_factory=dict,
        description="the desired fleet: nodes per role (web, worker, exactly one scheduler)",
    )
    database_url: SecretStr | None = Field(
        None, description="the database the fleet here uses (restored into by evacuate)"
    )
    redis_url: SecretStr | None = Field(None, description="the Redis the fleet here uses")
    storage: str | None = Field(
        None, description="the storage backend (storage.backends) media moves to on evacuate"
    )
    env: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="further HOLDFAST_* settings the nodes here get (rendered into user-data)",
    )

    @model_validator(mode="after")
    def _one_scheduler(self) -> Self:
        scheduler = self.roles.get("scheduler")
        if self.roles and (scheduler is None or scheduler.count != 1):
            raise ValueError("a fleet runs exactly one scheduler (roles.scheduler.count = 1)")
        web = self.roles.get("web")
        url = self.database_url.get_secret_value() if self.database_url else None
        if web is not None and web.count > 1 and (url is None or url.startswith("sqlite://")):
            raise ValueError(
                "more than one web node needs a shared database: set database_url to a "
                "PostgreSQL one (SQLite is one file on one machine)"
            )
        return self


class ComputeSettings(_Section):
    """Where the service is hosted (README: Hosting)."""

    providers: dict[str, ComputeProviderSettings] = Field(
        default_factory=dict, description="named hosting configurations"
    )
    active: str | None = Field(
        None, description="the configuration the fleet runs at now (fleet commands' default)"
    )

    @model_validator(mode="after")
    def _names(self) -> Self:
        for name in self.providers:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,23}", name):
                raise ValueError(f"compute configuration name {name!r} is not allowed")
        if self.active is not None and self.active not in self.providers:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ValueError(f"compute.active names no configuration: {self.active!r} ({known})")
        return self


class FleetSettings(_Section):
    """How fleet nodes are named, tagged, installed and checked (README: Hosting)."""

    name: str = Field(
        "holdfast",
        pattern=r"^[a-z][a-z0-9-]{0,31}$",
        description="this deployment's name: node names and the tag that marks nodes ours",
    )
    package: str = Field(
        "holdfast", description="what nodes `pip install` (a requirement: name, URL or path)"
    )
    domain: str | None = Field(None, description="the public host name (nginx, TLS)")
    health_url: str = Field(
        "https://{ip}/healthz",
        description="a web node's health check; `{ip}` is its public address",
    )

    @field_validator("health_url")
    @classmethod
    def _health_placeholders(cls, value: str) -> str:
        # Filled in with str.format(ip=...): any other placeholder would fail every check.
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"fleet.health_url {value!r} is not a template: {exc}") from None
        if fields != {"ip"}:
            raise ValueError(
                f"fleet.health_url must contain {{ip}} and no other placeholder, not {value!r}"
            )
        return value

    health_timeout_seconds: float = Field(
        900, gt=0, le=86_400, description="how long evacuate waits for a new fleet to be healthy"
    )
    drain_seconds: float = Field(
        60, ge=0, le=3_600, description="how long old nodes keep serving after DNS moved away"
    )


class DNSProviderSettings(ProviderSettings):
    """One DNS configuration: `libcloud`, or one a package adds."""


class DNSSettings(_Section):
    """The records that point the domain at the fleet's web nodes (README: Hosting)."""

    providers: dict[str, DNSProviderSettings] = Field(
        default_factory=dict, description="named DNS configurations"
    )
    active: str | None = Field(None, description="the DNS configuration evacuate switches")
    zone: str | None = Field(None, description="the zone, e.g. `example.org`")
    records: tuple[str, ...] = Field(
        ("@",), description="names in the zone pointed at the web nodes (`@` is the apex)"
    )
    ttl: int = Field(300, ge=30, le=86_400, description="seconds, for the records switched")

    @model_validator(mode="after")
    def _active(self) -> Self:
        if self.active is not None and self.active not in self.providers:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ValueError(f"dns.active names no configuration: {self.active!r} ({known})")
        if self.active is not None and self.zone is None:
            raise ValueError("dns.zone is required with dns.active")
        return self


class BackupSettings(_Section):
    """Database backups (README: Backups). Keep them at a vendor other than the one hosting
    the fleet: a backup that leaves with the vendor cannot bring the service back."""

    storage: str | None = Field(
        None,
        description="the storage backend (storage.backends) backups go to (default: "
        "storage.default)",
    )
    prefix: str = Field(
        "backups/", pattern=r"^[a-z0-9][a-z0-9/_-]*/$", description="key prefix of backups"
    )
    keep: int = Field(14, ge=1, le=10_000, description="newest backups kept")
    keep_days: float = Field(
        30, ge=0, le=3_650, description="backups younger than this are kept too"
    )
    every_hours: float | None = Field(
        24, gt=0, le=24 * 31, description="the scheduler makes one this often (unset: never)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        None, description="default: SQLite file holdfast.sqlite3 in data_dir"
    )
    redis_url: str | None = None
    secret_key: SecretStr | None = Field(
        None, description="token signing key; required in production"
    )
    node_id: int | None = Field(
        None, ge=0, le=1023, description="this process's node id, instead of leasing one"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65_535)
    log_level: str = "INFO"
    auth: AuthSettings = AuthSettings()
    graphql: GraphQLSettings = GraphQLSettings()
    http: HttpSettings = HttpSettings()
    nodes: NodeSettings = NodeSettings()
    posts: PostSettings = PostSettings()
    timelines: TimelineSettings = TimelineSettings()
    live: LiveSettings = LiveSettings()
    jobs: JobSettings = JobSettings()
    storage: StorageSettings = StorageSettings()
    media: MediaSettings = MediaSettings()
    payments: PaymentSettings = PaymentSettings()
    compute: ComputeSettings = ComputeSettings()
    fleet: FleetSettings = FleetSettings()
    dns: DNSSettings = DNSSettings()
    backup: BackupSettings = BackupSettings()
    web_replicas: int = Field(
        1,
        ge=1,
        le=10_000,
        description="how many web processes (replicas, hosts) serve this database: SQLite is "
        "refused above one (the Kubernetes and compose files set it)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get(CONFIG_FILE_ENV, "holdfast.toml")
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file)

    @model_validator(mode="before")
    @classmethod
    def _one_job_at_a_time_on_sqlite(cls, data: Any) -> Any:
        # Tortoise's SQLite client runs one transaction at a time on its one connection:
        # jobs beyond the first would only wait for it, and the node-id lease's renewal waits
        # behind every one of them. An explicit setting still wins.
        if not isinstance(data, dict):
            return data
        url = data.get("database_url")
        if url is not None and not str(url).startswith("sqlite://"):
            return data
        jobs = data.get("jobs")
        if isinstance(jobs, JobSettings):
            if "concurrency" not in jobs.model_fields_set:
                data = {**data, "jobs": jobs.model_copy(update={"concurrency": 1})}
        elif jobs is None or (isinstance(jobs, dict) and "concurrency" not in jobs):
            data = {**data, "jobs": {**(jobs or {}), "concurrency": 1}}
        return data

    @model_validator(mode="after")
    def _storage_backends(self) -> Self:
        backends = self.storage.backends
        if DEFAULT_STORAGE_BACKEND not in backends:
            local = StorageBackendSettings(
                provider="local", options={"root": str(self.data_dir / "media")}
            )
            backends = {DEFAULT_STORAGE_BACKEND: local, **backends}
            # Frozen: the filled-in section replaces the one read.
            object.__setattr__(
                self, "storage", self.storage.model_copy(update={"backends": backends})
            )
        if self.storage.default not in self.storage.backends:
            known = ", ".join(sorted(self.storage.backends))
            raise ValueError(
                f"storage.default (HOLDFAST_STORAGE__DEFAULT) names no backend: "
                f"{self.storage.default!r} (known: {known})"
            )
        return self

    @model_validator(mode="after")
    def _sqlite_serves_one(self) -> Self:
        if self.web_replicas > 1 and self.effective_database_url.startswith("sqlite://"):
            raise ValueError(
                f"web_replicas is {self.web_replicas} but the database is SQLite (one file on "
                "one machine): set database_url to a PostgreSQL one"
            )
        for name, backend in (("backup.storage", self.backup.storage),):
            if backend is not None and backend not in self.storage.backends:
                known = ", ".join(sorted(self.storage.backends))
                raise ValueError(f"{name} names no storage backend: {backend!r} ({known})")
        for name, compute in self.compute.providers.items():
            if compute.storage is not None and compute.storage not in self.storage.backends:
                known = ", ".join(sorted(self.storage.backends))
                raise ValueError(
                    f"compute.providers.{name}.storage names no storage backend: "
                    f"{compute.storage!r} ({known})"
                )
        return self

    @model_validator(mode="after")
    def _production_needs_secret(self) -> Self:
        if self.env is Environment.PRODUCTION and self.secret_key is None:
            raise ValueError("secret_key is required when env is production")
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        return self

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite://{self.data_dir / 'holdfast.sqlite3'}"

    def processing_timeout(self) -> int:
        """Seconds a medium may stay processing before it fails (`media.processing_timeout`,
        else one hour more than its job can take through every retry, so that the check
        never fails a medium whose job may still succeed)."""
        if self.media.processing_timeout is not None:
            return self.media.processing_timeout
        return math.ceil(self.jobs.longest_retries()) + PROCESSING_MARGIN

    def signing_key(self) -> str:
        """The token signing key: configured, or generated once and kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / SECRET_FILE_NAME
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


RESTORE_DATABASE_URL_ENV = "HOLDFAST_RESTORE_DATABASE_URL"
"""`holdfast backup restore --database-url`, kept off the command line: not a setting."""
_CONFIG_ONLY_ENV = {CONFIG_FILE_ENV, RESTORE_DATABASE_URL_ENV}


def _unknown_env_keys(environ: Mapping[str, str]) -> list[str]:
    known = {name.upper() for name in Settings.model_fields}
    unknown = []
    for key in environ:
        if not key.startswith(ENV_PREFIX) or key in _CONFIG_ONLY_ENV:
            continue
        top = key[len(ENV_PREFIX) :].split("__", 1)[0]
        if top not in known:
            unknown.append(key)
    return sorted(unknown)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and holdfast.toml, failing with the bad key named."""
    unknown = _unknown_env_keys(os.environ)
    if unknown:
        raise SettingsError(f"unknown setting {', '.join(unknown)}")
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a check across settings names its keys itself
                problems.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            key = ".".join(str(part) for part in error["loc"])
            env_name = ENV_PREFIX + "__".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{key} ({env_name}): {error['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    _check_providers(settings)
    return settings


def _check_providers(settings: Settings) -> None:
    """Every configured provider exists and takes the options given (a start-up error
    naming the key, before anything is opened)."""
    from providers.errors import ConfigurationError
    from providers.registry import parse_options

    sections: list[tuple[str, str, Mapping[str, ProviderSettings]]] = [
        ("storage", "storage.backends", settings.storage.backends),
        ("payments", "payments.providers", settings.payments.providers),
        ("compute", "compute.providers", settings.compute.providers),
        ("dns", "dns.providers", settings.dns.providers),
    ]
    for kind, prefix, configured in sections:
        for name, config in configured.items():
            try:
                parse_options(
                    kind, config.provider, config.options, where=f"{prefix}.{name}.options"
                )
            except ConfigurationError as exc:
                raise SettingsError(f"{prefix}.{name}: {exc}") from None
