"""PostgreSQL only: an exclusion constraint so a channel's config versions never overlap.

SQLite has no equivalent; there `configs.services.open_new_config_version`
checks in one transaction (and the partial unique index "one open version per
channel" from 0001 holds on both).
"""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE configs_channelconfigversion
    ADD CONSTRAINT ccv_versions_never_overlap
    EXCLUDE USING gist (
        channel_id WITH =,
        tstzrange(effective_from, COALESCE(effective_to, 'infinity'::timestamptz), '[)') WITH &&
    );
"""
DROP = "ALTER TABLE configs_channelconfigversion DROP CONSTRAINT IF EXISTS ccv_versions_never_overlap;"


def add_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("configs", "0001_initial")]
    operations = [migrations.RunPython(add_exclusion, drop_exclusion)]
