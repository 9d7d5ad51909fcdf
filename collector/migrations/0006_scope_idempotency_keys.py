"""Client idempotency keys are scoped to their device and channel (§4.2).

Until now a client key was stored as given, so a key sent for device A could
suppress device B's reading. Existing client keys (those not already starting
with their row's `device|channel|`) are rewritten as `device|channel|<key>`;
derived keys (`device|channel|ts`) already have that form. The column grows
to hold a 200-character client key behind the scope.
"""

from django.db import migrations, models

BATCH = 2000


def scope_client_keys(apps, schema_editor):
    PowerLog = apps.get_model("collector", "PowerLog")
    rows = (
        PowerLog.objects.filter(idempotency_key__isnull=False)
        .values_list("pk", "idempotency_key", "device__device_id", "channel__key")
        .order_by("pk")
    )
    changed = []
    for pk, key, device_id, channel_key in rows.iterator(chunk_size=BATCH):
        scope = f"{device_id}|{channel_key}|"
        if not key.startswith(scope):
            changed.append(PowerLog(pk=pk, idempotency_key=scope + key))
        if len(changed) >= BATCH:
            PowerLog.objects.bulk_update(changed, ["idempotency_key"])
            changed = []
    if changed:
        PowerLog.objects.bulk_update(changed, ["idempotency_key"])


class Migration(migrations.Migration):
    dependencies = [("collector", "0005_powerlog_reason_imported")]

    operations = [
        migrations.AlterField(
            model_name="powerlog",
            name="idempotency_key",
            field=models.CharField(blank=True, max_length=400, null=True, verbose_name="idempotency key"),
        ),
        migrations.RunPython(scope_client_keys, migrations.RunPython.noop),
    ]
