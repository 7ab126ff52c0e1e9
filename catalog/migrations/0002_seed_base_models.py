from django.db import migrations


def seed(apps, schema_editor):
    # The historical model, not catalog.models: the catalog constants are plain data.
    from catalog.base_models import seed_catalog

    seed_catalog(apps.get_model("catalog", "BaseModel"))


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
