"""The strings the dashboard's scripts show, translated on the server (one catalog: locale/*/django.po)."""

from django.utils.translation import gettext as _


def js_strings() -> dict[str, str]:
    return {
        "running": _("Running"),
        "stopped": _("Stopped"),
        "online": _("Online"),
        "offline": _("Offline"),
        "live": _("Live"),
        "connecting": _("Connecting…"),
        "reconnecting": _("Connection lost, reconnecting…"),
        "never_seen": _("never seen"),
        "no_reading": _("no reading yet"),
        "loading": _("Loading the chart…"),
        "load_failed": _("The chart could not be loaded. Check the connection and try again."),
        "retry": _("Try again"),
        "no_data": _("No measurements in this range."),
        "power": _("Power (W)"),
        "power_band": _("Min–max power (W)"),
        "current": _("Current (A)"),
        "energy_kwh": _("Energy (kWh)"),
        "bucket": _("one point per %(duration)s"),
        "total": _("Total"),
        "last_reading": _("last reading %(when)s"),
        "last_seen": _("last seen %(when)s"),
        "running_since": _("running since %(since)s"),
        # The same units as the server's `duration` filter.
        "dur_s": _("%(s)d s"),
        "dur_min_s": _("%(m)d min %(s)02d s"),
        "dur_min": _("%(m)d min"),
        "dur_h_min": _("%(h)d h %(m)02d min"),
        "dur_d_h": _("%(d)d d %(h)d h"),
    }
