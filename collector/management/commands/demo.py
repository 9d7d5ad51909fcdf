"""`make run`: the whole thing on one machine, with a simulated Shelly feeding it."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from collector.models import IngestToken
from collector.services import ensure_device_from_env


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

        browse_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base = f"http://{browse_host}:{port}"
        ws_url = f"ws://{browse_host}:{port}/ws/shelly/{token}/"
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        processes = {
            "web": [python, "-m", "daphne", "-b", host, "-p", str(port), "shelly_site.asgi:application"],
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
        running = self._start(processes)
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
        self._supervise(running)

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

    def _start(self, processes):
        env = dict(os.environ)
        running = {}
        for name, argv in processes.items():
            running[name] = subprocess.Popen(argv, env=env, cwd=settings.BASE_DIR)
            if name == "web":
                time.sleep(1.5)  # let the server bind before the simulator connects
        return running

    def _supervise(self, running):
        def stop(*_):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            while True:
                for name, proc in running.items():
                    code = proc.poll()
                    if code is not None:
                        raise CommandError(f"the {name} process stopped (exit code {code}); see its output above.")
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping …")
        finally:
            for proc in running.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in running.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
