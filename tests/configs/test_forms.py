"""Admin forms a plant operator fills: tariff periods and emission factors as labelled fields, no JSON."""

import pytest

from configs.models import EmissionFactorSet, Tariff

pytestmark = pytest.mark.django_db


def inline_management(page) -> dict:
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({f"{management.prefix}-{name}": value for name, value in management.initial.items()})
    return data


def period_row(index, name, days, start, end, price):
    row = {
        f"rules-{index}-name": name,
        f"rules-{index}-start": start,
        f"rules-{index}-end": end,
        f"rules-{index}-price": price,
    }
    row.update({f"rules-{index}-day-{d}": "1" for d in days})
    return row


def post_tariff(client, *rows, standing="0,45", url="/admin/configs/tariff/add/"):
    page = client.get(url)
    assert page.status_code == 200
    data = {"name": "Home tariff", "currency": "EUR", "rules-rows": str(len(rows)), "rules-standing_charge": standing}
    data.update(inline_management(page))
    for row in rows:
        data.update(row)
    return client.post(url, data)


WEEKDAYS, WEEKEND = range(5), (5, 6)


def test_tariff_periods_typed_in_rows_are_stored_as_rules(admin_client):
    response = post_tariff(
        admin_client,
        period_row(0, "peak", WEEKDAYS, "07:00", "23:00", "0,27"),
        period_row(1, "off-peak", WEEKDAYS, "23:00", "07:00", "0.2068"),
        period_row(2, "weekend", WEEKEND, "00:00", "24:00", "0.18"),
        period_row(3, "", (), "", "", ""),  # an empty spare row is ignored
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Tariff.objects.get().rules == {
        "periods": [
            {"name": "peak", "days": "weekday", "start": "07:00", "end": "23:00", "price_per_kwh": 0.27},
            {"name": "off-peak", "days": "weekday", "start": "23:00", "end": "07:00", "price_per_kwh": 0.2068},
            {"name": "weekend", "days": "weekend", "start": "00:00", "end": "24:00", "price_per_kwh": 0.18},
        ],
        "standing_charge_per_day": 0.45,
    }


def test_the_change_form_shows_the_periods_as_rows_not_json(admin_client):
    tariff = Tariff.objects.create(
        name="t",
        rules={"periods": [{"name": "flat", "days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00",
                            "price_per_kwh": 0.2}]},
    )  # fmt: skip
    page = admin_client.get(f"/admin/configs/tariff/{tariff.pk}/change/").content.decode()
    assert 'name="rules-0-name" value="flat"' in page
    assert 'name="rules-0-day-6" value="1" checked' in page
    assert 'name="rules-0-price" value="0.2"' in page
    assert "price_per_kwh" not in page  # no JSON shown


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [period_row(0, "peak", WEEKDAYS, "7h", "23:00", "0.27")],
            "Period 1 (peak): the start time “7h” is not a time",
        ),
        ([period_row(0, "peak", WEEKDAYS, "00:00", "24:00", "cheap")], "Period 1 (peak): the price per kWh must be"),
        ([period_row(0, "peak", (), "00:00", "24:00", "0.2")], "Period 1 (peak): choose its days"),
        ([period_row(0, "week", WEEKDAYS, "00:00", "24:00", "0.2")], "Saturday 00:00 is not covered by any period"),
        ([], "A tariff needs at least one period"),
    ],
)
def test_a_wrong_period_gets_a_plain_error_naming_it_and_nothing_is_saved(admin_client, rows, message):
    response = post_tariff(admin_client, *rows)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["rules"]
    assert any(message in error for error in errors), errors
    assert len(errors) == 1  # said once, not again as a general error
    assert not Tariff.objects.exists()


def factor_form_data(page, **changes):
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if callable(value):
            value = value()
        if name in ("valid_from", "valid_to"):
            data[f"{name}_0"] = value.strftime("%Y-%m-%d") if value else ""
            data[f"{name}_1"] = value.strftime("%H:%M:%S") if value else ""
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    data.update(changes)
    return data


def test_emission_factors_are_one_labelled_field_per_treatment(admin_client):
    factors = EmissionFactorSet.objects.get()
    url = f"/admin/configs/emissionfactorset/{factors.pk}/change/"
    page = admin_client.get(url)
    text = page.content.decode()
    assert "Constructed wetland, vertical subsurface flow" in text and 'name="mcf_wetland_vertical"' in text
    assert 'name="mcf_values"' not in text

    response = admin_client.post(
        url, factor_form_data(page, mcf_septic="0.45", grid_factor_kg_per_kwh="0.06", grid_factor_source="RTE 2024")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    factors.refresh_from_db()
    assert factors.mcf_values["septic"] == 0.45 and factors.mcf_values["wetland_vertical"] == 0.01
    assert len(factors.mcf_values) == 9
    assert factors.grid_factor_kg_per_kwh == 0.06


def test_a_factor_out_of_range_or_without_source_is_refused_with_the_field_named(admin_client):
    factors = EmissionFactorSet.objects.get()
    url = f"/admin/configs/emissionfactorset/{factors.pk}/change/"
    page = admin_client.get(url)
    response = admin_client.post(url, factor_form_data(page, mcf_septic="1.5", grid_factor_kg_per_kwh="0.06"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "mcf_septic" in errors and "grid_factor_source" in errors
    factors.refresh_from_db()
    assert factors.mcf_values["septic"] == 0.5 and factors.grid_factor_kg_per_kwh is None
