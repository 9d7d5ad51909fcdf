"""manage.py provision_shelly HOST [--password P] [--name N] [--server wss://…] [--wait S]"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from collector.provisioning import ProvisioningError, provision


class Command(BaseCommand):
    help = _(
        "Add a Shelly by its IP: read its identity over local RPC, create it with a device-bound ingest token "
        "and point its outbound WebSocket at this server (Ws.SetConfig), then reboot it if it asks to."
    )

    def add_arguments(self, parser):
        parser.add_argument("host", help=gettext_lazy("The Shelly's IP address or host name (host:port works)"))
        parser.add_argument("--password", default="", help=gettext_lazy("Its password, when auth is enabled"))
        parser.add_argument("--name", default="", help=gettext_lazy("A name for the device"))
        parser.add_argument(
            "--server", default=None, help=gettext_lazy("ws(s):// address of this server (default: PUBLIC_WS_URL)")
        )
        parser.add_argument("--wait", type=float, default=None, help=gettext_lazy("Seconds to wait for it to connect"))

    def handle(self, *args, host, password="", name="", server=None, wait=None, **options):
        try:
            result = provision(host, password=password, name=name, server=server, confirm_s=wait)
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from None
        device = result.device
        self.stdout.write(
            (_("Created %(device)s") if result.created else _("Updated %(device)s"))
            % {"device": f"{device.device_id} ({device.model})"}
        )
        self.stdout.write(_("  WebSocket server set to %(url)s") % {"url": result.server_shown})
        if result.tokens_disabled:
            self.stdout.write(_("  %(n)d earlier token(s) of this device disabled") % {"n": result.tokens_disabled})
        if result.restarted:
            self.stdout.write(_("  rebooted to apply the new configuration"))
        if result.connected:
            self.stdout.write(self.style.SUCCESS(_("Connected: the device is sending its data.")))
        else:
            self.stdout.write(
                self.style.WARNING(
                    _("Configured, but it has not connected yet: check that it can reach %(url)s.")
                    % {"url": result.server_shown}
                )
            )
