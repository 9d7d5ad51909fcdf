"""Number, money and duration formats of the dashboard, in the active language (French or English)."""

from django import template
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

register = template.Library()

MISSING = "—"
CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}


@register.filter
def num(value, digits=0):
    """A localized number with grouping (1 234,5 in French, 1,234.5 in English); — when missing."""
    if value is None or value == "":
        return MISSING
    digits = int(digits)
    value = round(float(value), digits)
    if value == 0:
        value = 0.0  # no "-0"
    return number_format(value, decimal_pos=digits, use_l10n=True, force_grouping=True)


@register.filter
def money(value, currency=""):
    """12,34 € / 12.34 €; — when missing."""
    if value is None:
        return MISSING
    symbol = CURRENCY_SYMBOLS.get(currency, currency)
    return f"{num(value, 2)}\u00a0{symbol}".strip()


@register.filter
def duration(seconds):
    """45 s, 3 min 20 s, 3 min, 2 h 05 min, 3 d 4 h (units translated)."""
    if seconds is None:
        return MISSING
    seconds = int(round(float(seconds)))
    if seconds < 60:
        return _("%(s)d s") % {"s": seconds}
    minutes, secs = divmod(seconds, 60)
    if minutes < 10 and secs:
        return _("%(m)d min %(s)02d s") % {"m": minutes, "s": secs}
    if minutes < 60:
        return _("%(m)d min") % {"m": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}
    days, hours = divmod(hours, 24)
    return _("%(d)d d %(h)d h") % {"d": days, "h": hours}


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def moment(value):
    """A time in the site time zone: 10:32:15 today, else 12 March 10:32 (12 mars 10:32 in French)."""
    if value is None:
        return MISSING
    local = timezone.localtime(value)
    if local.date() == timezone.localdate():
        return date_filter(local, "H:i:s")
    return date_filter(local, "j N H:i")


@register.filter
def kwh(watt_hours, digits=3):
    """Wh → localized kWh; — when missing."""
    return MISSING if watt_hours is None else num(float(watt_hours) / 1000.0, digits)


@register.filter
def runtime(seconds):
    """A summed runtime: as a duration below a day, in hours above (several pumps add up to more than 24 h)."""
    if seconds is None:
        return MISSING
    if float(seconds) < 86400:
        return duration(seconds)
    return _("%(h)s h") % {"h": num(float(seconds) / 3600.0, 1)}
