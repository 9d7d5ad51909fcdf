"""The default EmissionFactorSet (§7): IPCC defaults, each with its source; no grid factor."""

from datetime import UTC, datetime

from django.db import migrations

DEFAULT_NAME = "IPCC defaults (no grid factor)"
MCF = {
    "septic": 0.5,
    "wetland_vertical": 0.01,
    "wetland_horizontal": 0.1,
    "wetland_surface": 0.4,
    "aerobic_plant": 0.03,
    "aerated_lagoon": 0.1,
    "trickling_filter": 0.06,
    "facultative_lagoon": 0.2,
    "anaerobic_deep": 0.8,
}


def create_default(apps, schema_editor):
    EmissionFactorSet = apps.get_model("configs", "EmissionFactorSet")
    if EmissionFactorSet.objects.exists():
        return
    EmissionFactorSet.objects.create(
        name=DEFAULT_NAME,
        valid_from=datetime(2000, 1, 1, tzinfo=UTC),
        b0_basis="bod",
        b0_bod=0.6,
        b0_bod_source="IPCC 2006 Guidelines Vol. 5 Ch. 6 Table 6.2, kept in the 2019 Refinement",
        b0_cod=0.25,
        b0_cod_source="IPCC 2006 Guidelines Vol. 5 Ch. 6 Table 6.2, kept in the 2019 Refinement",
        gwp_ch4=27.0,
        gwp_ch4_source="IPCC AR6 WG1 (2021) Ch. 7 Table 7.15, non-fossil CH4, GWP100 (AR5: 28)",
        mcf_values=MCF,
        mcf_source=(
            "IPCC 2019 Refinement to the 2006 Guidelines, Vol. 5 Ch. 6, Table 6.3; "
            "IPCC 2013 Wetlands Supplement, Ch. 6 (constructed wetlands)"
        ),
        grid_factor_kg_per_kwh=None,
        grid_factor_source="",
        note="Created by migration. Enter the site's grid factor and its source to get electricity and net CO2e.",
    )


def remove_default(apps, schema_editor):
    apps.get_model("configs", "EmissionFactorSet").objects.filter(name=DEFAULT_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("configs", "0002_config_versions_never_overlap")]
    operations = [migrations.RunPython(create_default, remove_default)]
