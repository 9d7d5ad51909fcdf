"""`make run`: the whole thing on one machine, with a simulated Shelly feeding it."""

import os
import secrets
import socket
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from collector.models import IngestToken
from collector.services import ensure_device_from_env
from dashboard.demo_data import seed_demo_data
from shelly_site.processes import Supervisor
from shelly_site.prometheus import clear_multiprocess_dir

# The web server must listen before the simulated devices connect.
WEB_START_TIMEOUT_S = 60


class Command(BaseCommand):
    help = "Migrate, create a demo admin and ingest token, then run web (daphne) + worker (qcluster) + simulator."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 for a real Shelly).")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--devices", type=int, default=2, help="Simulated Pro 4PM devices (0 for none).")
        parser.add_argument("--no-worker", action="store_true", help="Do not start the django-q2 worker.")
        parser.add_argument(
            "--meters", type=int, default=1, help="Simulated Pro 3EM meters polled over RPC (0 for none)."
        )
        parser.add_argument(
            "--meter-port", type=int, default=8081, help="Port of the first simulated meter (the next count up)."
        )

    def handle(self, *args, **options):
        host, port = options["host"], options["port"]
        self._check_port_free(host, port)
        self.stdout.write("1/4 Migrating the database …")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("setup_schedules", verbosity=0)
        self.stdout.write("2/4 Collecting static files …")
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write("3/4 Demo admin and ingest token …")
        password = self._demo_admin()
        token = self._demo_ingest_token()
        seed_demo_data(
            devices=options["devices"], meters=options["meters"], meter_port=options["meter_port"], stdout=self.stdout
        )

        browse_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base = f"http://{browse_host}:{port}"
        ws_url = f"ws://{browse_host}:{port}/ws/shelly/{token}/"
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        processes = {
            # daphne with its access log through Python logging: device tokens redacted.
            "web": [
                python,
                "-m",
                "shelly_site.daphne_server",
                "-b",
                host,
                "-p",
                str(port),
                "shelly_site.asgi:application",
            ],  # fmt: skip
        }
        if not options["no_worker"]:
            processes["worker"] = [python, manage, "qcluster"]
        if options["devices"] > 0:
            processes["simulator"] = [
                python,
                manage,
                "simulate_shelly",
                "--devices",
                str(options["devices"]),
                "--url",
                ws_url,
                "--scenario",
                "pumps",
            ]
        if options["meters"] > 0:
            # Fixed ports: the polled device is found again by its host on the next run.
            meter_port = options["meter_port"]
            for n in range(options["meters"]):
                self._check_port_free("127.0.0.1", meter_port + n)
                ensure_device_from_env(host=f"127.0.0.1:{meter_port + n}")
            processes["meters"] = [
                python,
                manage,
                "simulate_shelly",
                "--kind",
                "rpc3em",
                "--devices",
                str(options["meters"]),
                "--rpc-port",
                str(meter_port),
            ]
            processes["poller"] = [python, manage, "run_poller"]
        self.stdout.write("4/4 Starting " + ", ".join(processes) + " …")
        supervisor = Supervisor()
        supervisor.handle_signals()
        try:
            started = self._start(supervisor, processes, web_address=(browse_host, port))
            if started:
                self.stdout.write(
                    self.style.SUCCESS(
                        "\nshelly-monitor is running.\n"
                        f"  Dashboard : {base}/\n"
                        f"  Admin     : {base}/admin/   login: admin / {password}\n"
                        f"  API docs  : {base}/api/v1/docs/\n"
                        f"  Device URL: {ws_url}\n"
                        "Press Ctrl-C to stop.\n"
                    )
                )
            stopped = supervisor.wait() if started else supervisor.exited_child()
        finally:
            self.stdout.write("\nStopping …")
            killed = supervisor.stop()
        if killed:
            self.stderr.write(f"Killed after the stop window: {', '.join(killed)}.")
        if stopped is not None:
            code = supervisor.children[stopped].returncode
            raise CommandError(f"the {stopped} process stopped (exit code {code}); see its output above.")
        if not started and supervisor.stop_signal is None:
            raise CommandError(f"The web server did not listen on {browse_host}:{port} within {WEB_START_TIMEOUT_S} s.")
        self.stdout.write("Stopped.")

    def _check_port_free(self, host, port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise CommandError(
                    f"Port {port} on {host} is busy ({exc.strerror}). Stop what uses it or choose another port "
                    "(--port for the web server, --meter-port for the simulated meters)."
                ) from None

    def _secret_file(self, name) -> Path:
        return Path(settings.DATA_DIR) / name

    def _demo_admin(self) -> str:
        path = self._secret_file("demo-admin-password")
        password = path.read_text().strip() if path.exists() else secrets.token_urlsafe(9)
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if created or not path.exists():
            user.set_password(password)
            user.save()
            path.write_text(password)
            path.chmod(0o600)
        return password

    def _demo_ingest_token(self) -> str:
        path = self._secret_file("demo-ingest-token")
        if path.exists():
            raw = path.read_text().strip()
            if IngestToken.objects.matching(raw).exists():
                return raw
        token = IngestToken(name="demo simulator")
        raw = token.set_new_secret()
        token.save()
        path.write_text(raw)
        path.chmod(0o600)
        return raw

    def _start(self, supervisor, processes, *, web_address) -> bool:
        """Start the children, the web server first; False if a signal or a crash came first."""
        # One /metrics view over all the children: a shared directory, empty at start.
        metrics_dir = settings.PROMETHEUS_MULTIPROC_DIR or str(Path(settings.DATA_DIR) / "metrics")
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
        clear_multiprocess_dir(metrics_dir)
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        for name, argv in processes.items():
            process = supervisor.start(name, argv, env=env, cwd=settings.BASE_DIR)
            if name == "web" and not self._wait_for_web(supervisor, process, web_address):
                return False
        return supervisor.stop_signal is None

    def _wait_for_web(self, supervisor, process, address) -> bool:
        deadline = time.monotonic() + WEB_START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with socket.create_connection(address, timeout=0.5):
                    return True
            except OSError:
                if supervisor.sleep(0.2):
                    return False
        return False
