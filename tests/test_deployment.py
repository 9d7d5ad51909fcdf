"""The deployment files (§9): compose, Dockerfile, systemd units, nginx, .env.example — valid and in step.

`docker compose config` needs Docker's compose plugin, which most machines
running this suite lack; the compose file is checked against the Compose
specification with the `compose-spec` package instead, and with `docker
compose config` as well where the plugin exists.
"""

import json
import re
import shutil
import subprocess

import pytest
import yaml
from compose_spec import PyCompose
from django.conf import settings

from tests.servers import BASE_DIR

README = (BASE_DIR / "README.md").read_text()
PRODUCTION = README[README.index("## Production") : README.index("## Development")]
UNITS = BASE_DIR / "deploy" / "systemd"
INSTALL_DIR = "/opt/shelly-monitor"

WEB = "uvicorn shelly_site.asgi:application"
WORKER = "manage.py qcluster"
POLLER = "manage.py run_poller"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def command_line(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_the_compose_file_follows_the_compose_specification(compose):
    # PyYAML resolves the anchors and merge keys (`<<: *app`) as compose does.
    PyCompose.from_json(json.dumps(compose)).to_spec()


def test_a_compose_file_with_a_typo_is_refused(compose):
    broken = json.loads(json.dumps(compose))
    broken["services"]["web"]["restrat"] = "always"
    with pytest.raises(ValueError):
        PyCompose.from_json(json.dumps(broken)).to_spec()


def test_compose_runs_the_readmes_processes_with_postgres_and_redis(compose):
    services = compose["services"]
    assert {"web", "worker", "poller", "postgres", "redis"} <= services.keys()
    assert WEB in command_line(services["web"])
    assert WORKER in command_line(services["worker"])
    assert POLLER in command_line(services["poller"])
    for name in ("web", "worker", "poller"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        # One /metrics view: the three share the metrics volume.
        assert "metrics:/metrics" in services[name]["volumes"]
        assert env["PROMETHEUS_MULTIPROC_DIR"] == "/metrics"
        assert services[name]["depends_on"]["prepare"]["condition"] == "service_completed_successfully"
    prepare = command_line(services["prepare"])
    assert "migrate" in prepare and "setup_schedules" in prepare and "clear_metrics" in prepare


def test_mosquitto_and_homebridge_are_optional_profiles(compose):
    services = compose["services"]
    assert services["mosquitto"]["profiles"] == ["mosquitto"]
    assert services["homebridge"]["profiles"] == ["homebridge"]
    for required in ("web", "worker", "poller", "postgres", "redis", "prepare"):
        assert "profiles" not in services[required]
    assert (BASE_DIR / "deploy/mosquitto/mosquitto.conf").exists()


def test_every_service_and_volume_compose_refers_to_exists(compose):
    services, volumes = compose["services"], compose["volumes"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith(".") or source in volumes, (name, source)


@pytest.mark.skipif(
    not shutil.which("docker") or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="Docker's compose plugin is not installed here",
)
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(
        ["docker", "compose", "-f", "docker-compose.yml", "config", "--quiet"],
        cwd=BASE_DIR,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "POSTGRES_PASSWORD": "for-the-check"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_the_image_runs_the_readmes_web_command():
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "pip install -r requirements.txt" in dockerfile
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert " ".join(cmd).startswith(WEB)
    # No secret baked in: .env stays out of the build context.
    assert ".env" in (BASE_DIR / ".dockerignore").read_text().split()


def unit(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("name, command", [("web", WEB), ("worker", WORKER), ("poller", POLLER)])
def test_each_systemd_unit_runs_the_readmes_command_and_stops_its_children(name, command):
    values = unit(f"shelly-monitor-{name}.service")
    [exec_start] = values["ExecStart"]
    as_in_readme = exec_start.replace(f"{INSTALL_DIR}/", "")
    assert command in as_in_readme and as_in_readme in PRODUCTION
    assert values["KillMode"] == ["mixed"]
    assert values["WorkingDirectory"] == [INSTALL_DIR]
    assert values["Requires"] == ["shelly-monitor-prepare.service"]


def test_the_prepare_unit_runs_the_readmes_preparation():
    steps = [step.replace(f"{INSTALL_DIR}/", "") for step in unit("shelly-monitor-prepare.service")["ExecStart"]]
    assert [step.split("manage.py ")[1].split()[0] for step in steps] == [
        "migrate", "setup_schedules", "collectstatic", "clear_metrics",
    ]  # fmt: skip
    for step in steps:
        assert step.split(" --")[0] in PRODUCTION


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_units(tmp_path):
    # The units name /opt/shelly-monitor; systemd checks that the programs exist.
    for source in UNITS.iterdir():
        (tmp_path / source.name).write_text(source.read_text().replace(INSTALL_DIR, str(BASE_DIR)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and tmp_path.name not in result.stderr, result.stderr


def test_nginx_allows_a_full_batch_and_logs_no_device_token():
    site = (BASE_DIR / "deploy/nginx/shelly-monitor.conf").read_text()
    proxy = (BASE_DIR / "deploy/nginx/shelly-monitor-proxy.conf").read_text()
    limit = re.search(r"client_max_body_size (\d+)m;", site).group(1)
    assert int(limit) * 1024 * 1024 > settings.INGEST_BATCH_MAX_BYTES
    device_format = re.search(r"log_format shelly_device ([^;]+);", site).group(1)
    assert "$request " not in device_format + " " and "$uri" not in device_format and "$args" not in device_format
    ws_locations = re.findall(r"location \^~ /ws \{(.*?)\}", site, re.S)
    assert ws_locations and all("access_log /var/log/nginx/access.log shelly_device;" in loc for loc in ws_locations)
    for header in ("Host $http_host", "X-Forwarded-Proto $scheme", "X-Forwarded-For $remote_addr", "Upgrade"):
        assert f"proxy_set_header {header}" in proxy


def settings_read_from_env() -> set[str]:
    source = (BASE_DIR / "shelly_site/settings.py").read_text()
    return set(re.findall(r'env\.(?:str|bool|int|float|list|db_url|email_url)\(\s*"([A-Z0-9_]+)"', source))


def test_env_example_lists_every_setting_and_nothing_else():
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    compose_only = {"POSTGRES_PASSWORD"}
    assert settings_read_from_env() == listed - compose_only


def test_env_example_shows_the_auto_register_default_of_each_mode():
    text = (BASE_DIR / ".env.example").read_text()
    # Mode-dependent: commented out, with both defaults said (true embedded, false in production).
    assert re.search(r"^# COLLECTOR_AUTO_REGISTER=false$", text, re.M)
    assert not re.search(r"^COLLECTOR_AUTO_REGISTER=", text, re.M)
