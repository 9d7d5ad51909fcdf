"""Production settings as the README sets them (§9): check --deploy clean, secure behind TLS, no `*` host."""

import json
import re
import secrets
import subprocess
import sys

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.servers import BASE_DIR, daphne_argv, free_port, manage_argv, process_env, running

PRODUCTION_HOST = "pumps.example.org"


def production_env(**overrides) -> dict:
    """The README's production .env: PostgreSQL (or the test database), a real key, the site's name."""
    env = process_env(SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS=PRODUCTION_HOST, **overrides)
    for default_in_production in ("BEHIND_TLS_PROXY", "LOG_JSON"):
        if default_in_production not in overrides:
            env.pop(default_in_production)
    return env


def settings_in(env: dict, *names: str) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "shelly_site.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_the_readme_production_settings():
    result = subprocess.run(
        manage_argv("check", "--deploy", "--fail-level", "WARNING"),
        cwd=BASE_DIR,
        env=production_env(DATABASE_URL="postgres://shelly:secret@127.0.0.1:5432/shelly"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_defaults_are_secure_and_answer_only_to_known_names():
    env = production_env(DATABASE_URL="postgres://shelly:secret@127.0.0.1:5432/shelly")
    env.pop("ALLOWED_HOSTS")
    values = settings_in(
        env,
        "ALLOWED_HOSTS",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
    )
    assert "*" not in values["ALLOWED_HOSTS"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 180 * 24 * 3600


def test_plain_http_on_a_lan_is_one_setting_away():
    env = production_env(DATABASE_URL="postgres://shelly:secret@127.0.0.1:5432/shelly", BEHIND_TLS_PROXY="false")
    values = settings_in(env, "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS")
    assert values == {"SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False, "SECURE_HSTS_SECONDS": 0}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_admin_login_works_behind_the_readme_nginx(tmp_path):
    """nginx terminates TLS and passes Host and X-Forwarded-Proto; daphne sees plain http."""
    get_user_model().objects.create_superuser("boss", password="a long and fine password 42")
    port = free_port()
    proxied = {"Host": PRODUCTION_HOST, "X-Forwarded-Proto": "https"}
    origin = f"https://{PRODUCTION_HOST}"
    with running(daphne_argv(port), env=production_env(), log_path=tmp_path / "daphne.log", port=port):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=proxied) as browser:
            form = browser.get("/admin/login/")
            assert form.status_code == 200
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
            assert "secure" in form.headers["set-cookie"].lower()
            # The cookie is Secure: this http client would keep it to itself; nginx's browser sends it.
            browser.cookies = dict(form.cookies.items())
            login = browser.post(
                "/admin/login/?next=/admin/",
                data={"username": "boss", "password": "a long and fine password 42", "csrfmiddlewaretoken": csrf},
                headers={"Origin": origin, "Referer": f"{origin}/admin/login/"},
            )
            assert login.status_code == 302, login.text[:2000]
            assert login.headers["location"] == "/admin/"
            assert "strict-transport-security" in form.headers
            # Plain http to the site is sent to https (but probes on /healthz are not).
            assert browser.get("/admin/", headers={"X-Forwarded-Proto": "http"}).status_code == 301
            assert browser.get("/healthz", headers={"X-Forwarded-Proto": "http"}).status_code in (200, 503)
