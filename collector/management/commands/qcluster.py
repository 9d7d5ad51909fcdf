"""`manage.py qcluster`: django-q2's worker cluster, stopping promptly on SIGINT/SIGTERM.

Overrides django-q2's command of the same name (collector comes before
django_q in INSTALLED_APPS); see `shelly_site.qcluster` for why.
"""

import os

from django.conf import settings
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand
from django_q.tasks import async_task

from shelly_site.qcluster import PromptCluster


class Command(DjangoQClusterCommand):
    help = "Start the django-q2 worker cluster (schedules, sweeper, notifications); Ctrl-C or SIGTERM stops it."

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 -- django-q2 signs tasks with it: fail early without one
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        from alerts.services import apply_env_configuration

        # Seed 004's env (ALERT_POWER_W, HOMEBRIDGE_*, MQTT_*, TRIGGER_HTTP_URL) takes effect at start.
        apply_env_configuration()
        cluster = PromptCluster()
        cluster.start()
        # /healthz judges the worker by its last finished task; the first
        # scheduled one can be a minute away, so say hello right away.
        async_task("shelly_site.tasks.worker_heartbeat", task_name="worker heartbeat at start")
        if options.get("run_once"):
            cluster.stop()
