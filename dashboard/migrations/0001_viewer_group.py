from django.db import migrations

VIEWER_GROUP = "dashboard viewers"  # shelly_site.access.VIEWER_GROUP at the time of this migration


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=VIEWER_GROUP)


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
