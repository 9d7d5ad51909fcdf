from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from alerts import services


class Command(BaseCommand):
    help = _(
        "Create or update the default alert rule (ALERT_POWER_W) and the notifiers of HOMEBRIDGE_*, MQTT_*, "
        "TRIGGER_HTTP_URL (idempotent; the worker also does it at start)."
    )

    def handle(self, *args, **options):
        done = services.apply_env_configuration()
        for line in done or [_("nothing configured in the environment")]:
            self.stdout.write(line)
