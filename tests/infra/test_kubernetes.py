"""The Kubernetes manifests: valid for a pinned Kubernetes version (kubernetes-validate,
offline, strict), and shaped as the roles need (probes, one scheduler, migrations first, no
SQLite with several web replicas)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.hosting.userdata import client_max_body_size
from app.settings import SettingsError, load_settings
from tests.infra.tools import INFRA

KUBERNETES_VERSION = "1.33.0"
MANIFESTS = INFRA / "kubernetes"
FILES = sorted(MANIFESTS.glob("*.yaml"))
IMAGE = "registry.example.org/holdfast:0.1.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in FILES:
        for document in documents(path):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_manifest_is_valid_for_kubernetes(path: Path) -> None:
    for document in documents(path):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_validation_refuses_a_broken_manifest() -> None:
    """The check above can fail: a misspelt field, a wrong type."""
    web = resources()[("Deployment", "holdfast-web")]
    misspelt = {**web, "spec": {**web["spec"], "replica": 3}}
    wrong_type = {**web, "spec": {**web["spec"], "minReadySeconds": "three"}}

    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_role_and_its_companions_are_there() -> None:
    assert set(resources()) == {
        ("ConfigMap", "holdfast-config"),
        ("Secret", "holdfast-secrets"),
        ("Job", "holdfast-migrate"),
        ("Deployment", "holdfast-web"),
        ("Service", "holdfast-web"),
        ("PodDisruptionBudget", "holdfast-web"),
        ("HorizontalPodAutoscaler", "holdfast-web"),
        ("Ingress", "holdfast"),
        ("Deployment", "holdfast-worker"),
        ("Deployment", "holdfast-scheduler"),
    }


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("holdfast-web", ["serve", "--no-migrate"]),
        ("holdfast-worker", ["worker"]),
        ("holdfast-scheduler", ["scheduler"]),
    ],
)
def test_each_role_migrates_first_and_runs_unprivileged(name: str, args: list[str]) -> None:
    spec = pod_spec(resources()[("Deployment", name)])

    (container,) = spec["containers"]
    assert container["args"] == args
    assert container["image"] == IMAGE
    (migrate,) = spec["initContainers"]
    assert migrate["args"] == ["migrate"]
    assert migrate["image"] == IMAGE
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    for each in (container, migrate):
        assert each["securityContext"]["allowPrivilegeEscalation"] is False
        assert each["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert each["resources"]["requests"]["memory"]
        sources = {next(iter(source.values()))["name"] for source in each["envFrom"]}
        assert sources == {"holdfast-config", "holdfast-secrets"}


def test_migrate_job_runs_the_same_image() -> None:
    job = resources()[("Job", "holdfast-migrate")]

    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["migrate"]
    assert container["image"] == IMAGE
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_web_probes_health_and_never_drops_below_its_replicas_in_a_rollout() -> None:
    found = resources()
    web = found[("Deployment", "holdfast-web")]
    (container,) = pod_spec(web)["containers"]

    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    selector = web["spec"]["selector"]["matchLabels"]
    budget = found[("PodDisruptionBudget", "holdfast-web")]
    assert budget["spec"]["selector"]["matchLabels"] == selector
    assert found[("Service", "holdfast-web")]["spec"]["selector"] == selector
    hpa = found[("HorizontalPodAutoscaler", "holdfast-web")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "holdfast-web"
    # The autoscaler owns the count: a `replicas` in the Deployment would reset it to that
    # on every apply.
    assert "replicas" not in web["spec"]
    assert 1 < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_scheduler_is_a_singleton() -> None:
    scheduler = resources()[("Deployment", "holdfast-scheduler")]

    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"] == {"type": "Recreate"}


def cluster_environment() -> dict[str, str]:
    found = resources()
    return {
        **found[("ConfigMap", "holdfast-config")]["data"],
        **found[("Secret", "holdfast-secrets")]["stringData"],
    }


def test_cluster_configuration_refuses_sqlite_with_several_replicas(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    environment = cluster_environment()
    hpa = resources()[("HorizontalPodAutoscaler", "holdfast-web")]
    replicas = hpa["spec"]["minReplicas"]
    assert int(environment["HOLDFAST_WEB_REPLICAS"]) == replicas > 1
    for key, value in environment.items():
        if key.startswith("HOLDFAST_"):
            monkeypatch_env.setenv(key, value)

    settings = load_settings()
    assert settings.web_replicas == replicas
    assert settings.jobs.schedule_in_web is False  # holdfast-scheduler schedules
    # Only the ingress controller may set client addresses (a CIDR placeholder), not any pod.
    trusted = environment["FORWARDED_ALLOW_IPS"]
    assert trusted != "*"
    assert all(ipaddress.ip_network(net.strip()) for net in trusted.split(","))
    assert settings.effective_database_url.startswith("postgres://")

    monkeypatch_env.setenv("HOLDFAST_DATABASE_URL", "sqlite:///var/lib/holdfast/db.sqlite3")
    with pytest.raises(SettingsError, match="web_replicas is 3 but the database is SQLite"):
        load_settings()


def test_ingress_takes_the_largest_body_the_application_does(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    for key, value in cluster_environment().items():
        if key.startswith("HOLDFAST_"):
            monkeypatch_env.setenv(key, value)
    ingress = resources()[("Ingress", "holdfast")]

    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]

    assert int(body) == client_max_body_size(load_settings())
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "holdfast-web", "port": {"name": "http"}}
