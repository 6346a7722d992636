from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Environment, SettingsError, is_secret_option, load_settings


def test_defaults_are_the_embedded_development_setup(
    monkeypatch_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch_env.chdir(tmp_path)

    settings = load_settings()

    assert settings.env is Environment.DEVELOPMENT
    assert settings.port == 8000
    assert settings.effective_database_url == "sqlite://data/holdfast.sqlite3"
    assert settings.redis_url is None


def test_environment_variables_and_nested_keys(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_PORT", "9001")
    monkeypatch_env.setenv("HOLDFAST_AUTH__ACCESS_TOKEN_TTL", "600")

    settings = load_settings()

    assert settings.port == 9001
    assert settings.auth.access_token_ttl == 600


def test_unknown_setting_is_named(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_DATABSE_URL", "sqlite://x")

    with pytest.raises(SettingsError, match="HOLDFAST_DATABSE_URL"):
        load_settings()


def test_unknown_nested_setting_is_named(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_AUTH__ACCESS_TTL", "5")

    with pytest.raises(SettingsError, match=r"auth\.access_ttl"):
        load_settings()


def test_invalid_value_is_named(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_PORT", "eighty")

    with pytest.raises(SettingsError, match="HOLDFAST_PORT"):
        load_settings()


@pytest.mark.parametrize(
    "variable",
    [
        "HOLDFAST_AUTH__LOGIN_ATTEMPTS_PER_IP",
        "HOLDFAST_AUTH__SIGNUPS_PER_IP",
        "HOLDFAST_GRAPHQL__REQUESTS_PER_VIEWER",
    ],
)
def test_invalid_rate_is_named(monkeypatch_env: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch_env.setenv(variable, "lots")

    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_rates_are_read_from_the_environment(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_AUTH__SIGNUPS_PER_IP", "3/day")
    monkeypatch_env.setenv("HOLDFAST_GRAPHQL__REQUESTS_PER_VIEWER", "100/10 seconds")

    settings = load_settings()

    assert settings.auth.signups_per_ip == "3/day"
    assert settings.graphql.requests_per_viewer == "100/10 seconds"


def test_production_requires_a_secret(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_ENV", "production")

    with pytest.raises(SettingsError, match="secret_key is required"):
        load_settings()

    monkeypatch_env.setenv("HOLDFAST_SECRET_KEY", "s" * 40)
    assert load_settings().is_production


def test_short_secret_is_refused(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_SECRET_KEY", "short")

    with pytest.raises(SettingsError, match="at least 32"):
        load_settings()


def test_development_secret_is_generated_once_and_kept(
    monkeypatch_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch_env.setenv("HOLDFAST_DATA_DIR", str(tmp_path / "data"))

    first = load_settings().signing_key()
    second = load_settings().signing_key()

    assert first == second
    assert len(first) >= 48
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.read_text().strip() == first
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_toml_file_is_read_and_environment_wins(
    monkeypatch_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "holdfast.toml"
    config.write_text('port = 7000\nlog_level = "DEBUG"\n[graphql]\nmax_depth = 8\n')
    monkeypatch_env.setenv("HOLDFAST_CONFIG_FILE", str(config))
    monkeypatch_env.setenv("HOLDFAST_PORT", "7001")

    settings = load_settings()

    assert (settings.port, settings.log_level, settings.graphql.max_depth) == (7001, "DEBUG", 8)


def test_unknown_key_in_toml_is_named(monkeypatch_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "holdfast.toml"
    config.write_text("prot = 7000\n")
    monkeypatch_env.setenv("HOLDFAST_CONFIG_FILE", str(config))

    with pytest.raises(SettingsError, match="prot"):
        load_settings()


def test_job_settings_are_nested_and_bounded(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_JOBS__WORK_IN_WEB", "false")
    monkeypatch_env.setenv("HOLDFAST_JOBS__LEASE_SECONDS", "90")

    settings = load_settings()
    monkeypatch_env.setenv("HOLDFAST_JOBS__CONCURRENCY", "0")

    assert settings.jobs.work_in_web is False
    assert settings.jobs.lease_seconds == 90
    assert settings.jobs.max_attempts == 8
    with pytest.raises(SettingsError, match="HOLDFAST_JOBS__CONCURRENCY"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        (None, None, 1),
        ("sqlite:///tmp/x.sqlite3", None, 1),
        ("postgres://db/holdfast", None, 4),
        (None, "3", 3),
        ("postgres://db/holdfast", "2", 2),
    ],
)
def test_job_concurrency_defaults_to_one_on_sqlite(
    monkeypatch_env: pytest.MonkeyPatch, url: str | None, configured: str | None, expected: int
) -> None:
    # SQLite runs one transaction at a time; an explicit setting still wins.
    if url is not None:
        monkeypatch_env.setenv("HOLDFAST_DATABASE_URL", url)
    if configured is not None:
        monkeypatch_env.setenv("HOLDFAST_JOBS__CONCURRENCY", configured)
    monkeypatch_env.setenv("HOLDFAST_JOBS__LEASE_SECONDS", "90")

    settings = load_settings()

    assert settings.jobs.concurrency == expected
    assert settings.jobs.lease_seconds == 90


def test_node_lease_settings_are_read_and_checked(monkeypatch_env: pytest.MonkeyPatch) -> None:
    monkeypatch_env.setenv("HOLDFAST_NODES__LEASE_SECONDS", "12")
    monkeypatch_env.setenv("HOLDFAST_NODES__RENEW_SECONDS", "4")
    monkeypatch_env.setenv("HOLDFAST_HTTP__GRACEFUL_SHUTDOWN_SECONDS", "5")

    settings = load_settings()

    assert (settings.nodes.lease_seconds, settings.nodes.renew_seconds) == (12, 4)
    assert (settings.nodes.first_id, settings.nodes.last_id) == (0, 1023)
    assert settings.http.graceful_shutdown_seconds == 5
    assert settings.node_id is None  # leased unless an operator assigns one


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"HOLDFAST_NODES__RENEW_SECONDS": "20"}, "renew_seconds must be at most half"),
        ({"HOLDFAST_NODES__FIRST_ID": "9", "HOLDFAST_NODES__LAST_ID": "3"}, "first_id"),
        ({"HOLDFAST_NODES__LAST_ID": "1024"}, "HOLDFAST_NODES__LAST_ID"),
        ({"HOLDFAST_NODE_ID": "1024"}, "HOLDFAST_NODE_ID"),
    ],
)
def test_inconsistent_node_settings_are_refused(
    monkeypatch_env: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    for key, value in variables.items():
        monkeypatch_env.setenv(key, value)

    with pytest.raises(SettingsError, match=problem):
        load_settings()


def test_storage_defaults_to_a_local_backend_in_the_data_dir(
    monkeypatch_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch_env.setenv("HOLDFAST_DATA_DIR", str(tmp_path / "d"))

    storage = load_settings().storage

    assert storage.default == "local"
    assert storage.backends["local"].provider == "local"
    assert storage.backends["local"].options == {"root": str(tmp_path / "d" / "media")}


def test_storage_backends_are_named_configurations_from_the_environment(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    monkeypatch_env.setenv("HOLDFAST_STORAGE__DEFAULT", "r2")
    monkeypatch_env.setenv("HOLDFAST_STORAGE__BACKENDS__R2__PROVIDER", "s3")
    monkeypatch_env.setenv("HOLDFAST_STORAGE__BACKENDS__R2__OPTIONS__BUCKET", "media")
    monkeypatch_env.setenv(
        "HOLDFAST_STORAGE__BACKENDS__R2__OPTIONS__ENDPOINT_URL", "https://acct.r2.example"
    )

    storage = load_settings().storage

    assert storage.default == "r2"
    assert set(storage.backends) == {"local", "r2"}
    assert storage.backends["r2"].options == {
        "bucket": "media",
        "endpoint_url": "https://acct.r2.example",
    }


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"HOLDFAST_STORAGE__DEFAULT": "nope"}, "HOLDFAST_STORAGE__DEFAULT.*'nope'"),
        (
            {"HOLDFAST_STORAGE__BACKENDS__B__PROVIDER": "floppy"},
            r"storage.backends.b: unknown storage provider 'floppy' \(known: .*s3",
        ),
        (
            {
                "HOLDFAST_STORAGE__BACKENDS__B__PROVIDER": "s3",
                "HOLDFAST_STORAGE__BACKENDS__B__OPTIONS__BUCKET": "x",
                "HOLDFAST_STORAGE__BACKENDS__B__OPTIONS__BUKET": "x",
            },
            r"storage.backends.b.options.buket: Extra inputs",
        ),
        (
            {"HOLDFAST_STORAGE__BACKENDS__B__PROVIDER": "s3"},
            r"storage.backends.b.options.bucket: Field required",
        ),
    ],
)
def test_a_bad_storage_setting_stops_start_up_naming_the_key(
    monkeypatch_env: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for key, value in variables.items():
        monkeypatch_env.setenv(key, value)

    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_storage_credentials_are_masked_in_the_settings_repr(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    monkeypatch_env.setenv("HOLDFAST_STORAGE__BACKENDS__X__PROVIDER", "s3")
    monkeypatch_env.setenv("HOLDFAST_STORAGE__BACKENDS__X__OPTIONS__BUCKET", "media")
    monkeypatch_env.setenv("HOLDFAST_STORAGE__BACKENDS__X__OPTIONS__ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch_env.setenv("HOLDFAST_STORAGE__BACKENDS__X__OPTIONS__SECRET_ACCESS_KEY", secret)

    settings = load_settings()

    for shown in (repr(settings), str(settings), repr(settings.storage.backends["x"])):
        assert secret not in shown
        assert "secret_access_key" in shown
        assert "AKIDEXAMPLE" in shown  # an identifier, not a secret
        assert "'bucket': 'media'" in shown
    # The provider still gets the options as given.
    assert settings.storage.backends["x"].options["secret_access_key"] == secret


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("secret_access_key", True),
        ("password", True),
        ("api_token", True),
        ("key", True),
        ("access_key_id", False),
        ("bucket", False),
        ("endpoint_url", False),
    ],
)
def test_which_storage_options_are_secret(name: str, secret: bool) -> None:
    assert is_secret_option(name) is secret


def test_the_processing_timeout_covers_every_retry_of_the_job(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    default = load_settings()
    # 8 attempts of 30 s leases, the backoffs 2, 4, ... 128 s between them, and an hour.
    assert default.processing_timeout() == 8 * 30 + (2 + 4 + 8 + 16 + 32 + 64 + 128) + 3_600

    monkeypatch_env.setenv("HOLDFAST_JOBS__MAX_ATTEMPTS", "20")
    monkeypatch_env.setenv("HOLDFAST_JOBS__BACKOFF_MAX_SECONDS", "3600")
    patient = load_settings()
    assert patient.processing_timeout() > patient.jobs.longest_retries() > 9 * 3_600

    monkeypatch_env.setenv("HOLDFAST_MEDIA__PROCESSING_TIMEOUT", "600")
    assert load_settings().processing_timeout() == 600


def test_payments_are_named_configurations_and_plans_from_the_environment(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    api_key = "sk_live_51Habcdefghijklmnop"
    monkeypatch_env.setenv("HOLDFAST_PAYMENTS__PROVIDERS__CARD__PROVIDER", "stripe")
    monkeypatch_env.setenv("HOLDFAST_PAYMENTS__PROVIDERS__CARD__OPTIONS__API_KEY", api_key)
    monkeypatch_env.setenv("HOLDFAST_PAYMENTS__PROVIDERS__CARD__OPTIONS__WEBHOOK_SECRET", "whsec_1")
    monkeypatch_env.setenv("HOLDFAST_PAYMENTS__PROVIDERS__CARD__ACCEPT_NEW", "false")
    monkeypatch_env.setenv("HOLDFAST_PAYMENTS__PLANS__SUPPORTER__NAME", "Supporter")
    monkeypatch_env.setenv("HOLDFAST_PAYMENTS__PLANS__SUPPORTER__PRICES__EUR", "500")
    monkeypatch_env.setenv("HOLDFAST_PAYMENTS__PLANS__SUPPORTER__PERKS__MAX_POST_LENGTH", "2000")

    settings = load_settings()

    card = settings.payments.providers["card"]
    assert card.provider == "stripe"
    assert card.accept_new is False
    assert settings.payments.plans["supporter"].prices == {"eur": 500}
    assert settings.payments.plans["supporter"].perks.max_post_length == 2000
    for shown in (repr(settings), str(settings), repr(card)):
        assert api_key not in shown
        assert "whsec_1" not in shown
    assert card.options["api_key"] == api_key


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"HOLDFAST_PAYMENTS__PROVIDERS__X__PROVIDER": "paypal"},
            r"payments.providers.x: unknown payments provider 'paypal'",
        ),
        (
            {
                "HOLDFAST_PAYMENTS__PROVIDERS__X__PROVIDER": "manual",
                "HOLDFAST_PAYMENTS__PROVIDERS__X__OPTIONS__IBAN": "XX",
            },
            r"payments.providers.x.options.iban: Extra inputs are not permitted",
        ),
        (
            {
                "HOLDFAST_PAYMENTS__PLANS__GOLD__NAME": "Gold",
                "HOLDFAST_PAYMENTS__PLANS__GOLD__PRICES__EURO": "500",
            },
            r"currency 'euro' is not a lower-case ISO 4217 code",
        ),
        (
            {
                "HOLDFAST_PAYMENTS__PLANS__GOLD__NAME": "Gold",
                "HOLDFAST_PAYMENTS__PLANS__GOLD__PRICES__EUR": "0",
            },
            r"price in eur must be 1..100000000 minor units",
        ),
        (
            # A renewal charged before its period began would charge periods back to back.
            {"HOLDFAST_PAYMENTS__RENEWAL_LEAD_DAYS": "28"},
            r"payments.renewal_lead_days .*less than or equal to 27",
        ),
        (
            {"HOLDFAST_PAYMENTS__PROVIDERS__COMPLIMENTARY__PROVIDER": "manual"},
            r"payment configuration name 'complimentary' is not allowed",
        ),
    ],
)
def test_a_bad_payments_setting_stops_start_up_naming_the_key(
    monkeypatch_env: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for key, value in variables.items():
        monkeypatch_env.setenv(key, value)

    with pytest.raises(SettingsError, match=message):
        load_settings()
