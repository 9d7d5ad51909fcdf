"""Admin forms a plant operator can fill: tariff periods and emission factors as labelled fields.

The storage stays JSON (`Tariff.rules`, `EmissionFactorSet.mcf_values`); the
forms only turn rows of fields into it and back. Validation is the domain's
(`configs.tariffs.parse_tariff_rules`, `EmissionFactorSet.clean`), whose
messages name the period and the field in plain words.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext_lazy as _

from configs.models import DEFAULT_MCF, EmissionFactorSet, Tariff, TreatmentType
from configs.tariffs import DAY_SETS, parse_tariff_rules

EMPTY_PERIOD_ROWS = 3
MAX_PERIOD_ROWS = 24


def _days_to_set(days) -> set[int]:
    if isinstance(days, str):
        return set(DAY_SETS.get(days, ()))
    return {d for d in days or () if isinstance(d, int)}


def _set_to_days(days: set[int]):
    for name in ("all", "weekday", "weekend"):
        if days == set(DAY_SETS[name]):
            return name
    return sorted(days)


class TariffRulesWidget(forms.Widget):
    """The rules as a table: one row per period (name, days, from, to, price) and the standing charge."""

    template_name = "configs/widgets/tariff_rules.html"

    def format_value(self, value):
        return value if isinstance(value, dict) else {}

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rules = context["widget"]["value"] or {}
        periods = [p for p in rules.get("periods") or [] if isinstance(p, dict)]
        rows = []
        for period in [*periods, *([{}] * EMPTY_PERIOD_ROWS)][:MAX_PERIOD_ROWS]:
            days = _days_to_set(period.get("days", [])) if period else set()
            price = period.get("price_per_kwh", "")
            rows.append(
                {
                    "name": period.get("name", ""),
                    "start": period.get("start", ""),
                    "end": period.get("end", ""),
                    "price": "" if price is None else price,
                    "days": [(d, str(WEEKDAYS_ABBR[d]), d in days) for d in range(7)],
                }
            )
        context["widget"].update(
            rows=rows,
            standing_charge=rules.get("standing_charge_per_day", ""),
            row_count=len(rows),
        )
        return context

    def value_from_datadict(self, data, files, name):
        """Rows with a name, a time or a price become periods; fully empty rows are ignored."""
        try:
            count = min(int(data.get(f"{name}-rows", 0)), MAX_PERIOD_ROWS)
        except ValueError:
            count = 0
        periods = []
        for index in range(count):
            prefix = f"{name}-{index}"
            row = {key: (data.get(f"{prefix}-{key}") or "").strip() for key in ("name", "start", "end", "price")}
            days = {d for d in range(7) if data.get(f"{prefix}-day-{d}")}
            if not any(row.values()) and not days:
                continue
            periods.append(
                {
                    "name": row["name"],
                    "days": _set_to_days(days) if days else [],
                    "start": row["start"],
                    "end": row["end"],
                    "price_per_kwh": _parse_number(row["price"]),
                }
            )
        rules = {"periods": periods}
        standing = (data.get(f"{name}-standing_charge") or "").strip()
        if standing:
            rules["standing_charge_per_day"] = _parse_number(standing)
        return rules


def _parse_number(text: str):
    """A decimal number typed with a point or a comma; the text itself when it is not one (the rules say so)."""
    if text == "":
        return None
    try:
        return float(text.replace(",", ".").replace("\u00a0", "").replace(" ", ""))
    except ValueError:
        return text


class TariffRulesField(forms.Field):
    widget = TariffRulesWidget

    def clean(self, value):
        value = super().clean(value)
        parse_tariff_rules(value)  # ValidationError with a plain message naming the period and field
        return value


class TariffForm(forms.ModelForm):
    rules = TariffRulesField(
        label=_("periods and prices"),
        help_text=_(
            "One row per period: its days, from and to (local time, 24 h; an end before the start runs past "
            "midnight; 00:00 to 24:00 is a whole day) and the price per kWh. Every minute of the week must "
            "belong to exactly one period. Leave extra rows empty."
        ),
    )

    class Meta:
        model = Tariff
        fields = ["name", "currency", "valid_from", "valid_to", "rules", "is_site_default", "note"]


def mcf_field_name(treatment: str) -> str:
    return f"mcf_{treatment}"


class EmissionFactorSetForm(forms.ModelForm):
    """One number field per treatment type's methane correction factor instead of a JSON object."""

    class Meta:
        model = EmissionFactorSet
        # mcf_values is built from the per-treatment fields below.
        fields = [
            "name", "valid_from", "valid_to", "is_example", "note",
            "b0_basis", "b0_bod", "b0_bod_source", "b0_cod", "b0_cod_source", "gwp_ch4", "gwp_ch4_source",
            "mcf_source", "grid_factor_kg_per_kwh", "grid_factor_source",
        ]  # fmt: skip
        # A source is a sentence (document, table, year): room to read it.
        widgets = {
            name: forms.TextInput(attrs={"style": "width: min(36em, 100%)"})
            for name in ("b0_bod_source", "b0_cod_source", "gwp_ch4_source", "mcf_source", "grid_factor_source")
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.mcf_values if isinstance(self.instance.mcf_values, dict) else {}
        for treatment in TreatmentType:
            field = self.fields[mcf_field_name(treatment)]
            field.initial = stored.get(str(treatment), DEFAULT_MCF[treatment])

    def clean(self):
        data = super().clean()
        values = {}
        for treatment in TreatmentType:
            value = data.get(mcf_field_name(treatment))
            if value is None:
                continue  # the field's own error says what is wrong
            values[str(treatment)] = value
        if len(values) == len(TreatmentType):
            self.instance.mcf_values = values
        elif not self.errors:
            raise ValidationError(_("Every methane correction factor needs a value between 0 and 1."))
        return data


for _treatment in TreatmentType:
    EmissionFactorSetForm.base_fields[mcf_field_name(_treatment)] = EmissionFactorSetForm.declared_fields[
        mcf_field_name(_treatment)
    ] = forms.FloatField(
        label=_treatment.label,
        min_value=0,
        max_value=1,
        help_text=_("Methane correction factor, between 0 and 1."),
    )
