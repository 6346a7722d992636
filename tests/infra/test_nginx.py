"""The nginx site passes `nginx -t`, proxies WebSockets and takes the application's largest body."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.hosting.userdata import NGINX_TEMPLATE, client_max_body_size, render_nginx_site
from app.settings import Settings
from tests.infra.tools import INFRA, need_tool, run


def nginx_test(site: str, tmp_path: Path) -> tuple[bool, str]:
    """`nginx -t` on a main configuration in tmp_path that includes the site, with a
    self-signed certificate made here; no root needed."""
    nginx = need_tool("nginx")
    openssl = need_tool("openssl")
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = "/CN=social.example.org"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject]
    made = run(openssl, *request, "-keyout", key, "-out", certificate)
    assert made.returncode == 0, made.stderr
    site = site.replace("/etc/holdfast/tls/fullchain.pem", str(certificate))
    site = site.replace("/etc/holdfast/tls/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    temp = tmp_path / "temp"
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    access_log off;\n"
        f"    client_body_temp_path {temp}/body;\n"
        f"    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        f"    include {tmp_path}/site.conf;\n"
        "}\n"
    )
    temp.mkdir()
    config, log = tmp_path / "nginx.conf", tmp_path / "error.log"
    result = run(nginx, "-t", "-q", "-p", tmp_path, "-c", config, "-e", log)
    return result.returncode == 0, result.stdout + result.stderr


def test_the_site_in_infra_passes_nginx_t(tmp_path: Path) -> None:
    ok, output = nginx_test((INFRA / "nginx-holdfast.conf").read_text(), tmp_path)

    assert ok, output


def test_a_rendered_site_passes_nginx_t(
    tmp_path: Path, monkeypatch_env: pytest.MonkeyPatch
) -> None:
    settings = Settings(fleet={"domain": "social.example.org"}, media={"max_upload_bytes": 50_000})

    ok, output = nginx_test(render_nginx_site(settings), tmp_path)

    assert ok, output


def test_nginx_t_refuses_a_broken_site(tmp_path: Path) -> None:
    site = (INFRA / "nginx-holdfast.conf").read_text().replace("proxy_pass", "proxy_passs", 1)

    ok, output = nginx_test(site, tmp_path)

    assert not ok
    assert "proxy_passs" in output


def test_infra_site_is_the_template_rendered_with_the_defaults(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    """Regenerate after changing the template: `make infra`."""
    assert (INFRA / "nginx-holdfast.conf").read_text() == render_nginx_site(Settings())
    assert NGINX_TEMPLATE == "nginx-holdfast.conf"


def test_site_redirects_to_https_and_upgrades_websockets(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    site = render_nginx_site(Settings(fleet={"domain": "social.example.org"}))

    assert "return 301 https://$host$request_uri;" in site
    assert re.search(r"listen 443 ssl;", site)
    graphql = site.split("location = /graphql {", 1)[1].split("}", 1)[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in graphql
    assert "proxy_set_header Connection $holdfast_connection;" in graphql
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in graphql
    assert "server 127.0.0.1:8000;" in site
    assert site.count("server_name social.example.org;") == 2


def test_body_limit_follows_the_application_limits(monkeypatch_env: pytest.MonkeyPatch) -> None:
    settings = Settings(http={"max_body_bytes": 2_048}, media={"max_upload_bytes": 5_000_000})

    site = render_nginx_site(settings)

    assert client_max_body_size(settings) == 5_002_048
    assert "client_max_body_size 5002048;" in site
