# SQLite cannot alter a column in place: Django rebuilds the table (new table,
# copy, drop, rename), and the old table's triggers go with it. 0006 and 0007
# altered collector_powerlog after 0004 created the rollup triggers, so on
# SQLite no row was marked for its rollup any more. Re-create them (and mark
# every stored minute: rows written meanwhile were never marked). PostgreSQL
# keeps its triggers through ALTER TABLE: nothing to do there.
# Any later migration that alters collector_powerlog must do the same.
from importlib import import_module

from django.db import migrations

rollups = import_module("collector.migrations.0004_rollups_and_retention")


def recreate_on_sqlite(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for sql in [*rollups.SQLITE_BACKWARD, *rollups.SQLITE_FORWARD]:
            cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("collector", "0007_policy_default_threshold")]

    operations = [migrations.RunPython(recreate_on_sqlite, migrations.RunPython.noop)]
