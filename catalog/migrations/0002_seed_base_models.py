from django.db import migrations


def seed(apps, schema_editor):
    # The historical model, not catalog.models: the catalog constants are plain data.
    from catalog.base_models import CATALOG

    BaseModel = apps.get_model("catalog", "BaseModel")
    for entry in CATALOG:
        BaseModel.objects.update_or_create(
            name=entry.name,
            defaults={
                "hf_repo": entry.hf_repo,
                "context_window": entry.context_window,
                "max_prompt_tokens": entry.max_prompt_tokens,
                "max_completion_tokens": entry.max_completion_tokens,
                "training_data_limit_bytes": entry.training_data_limit_bytes,
                "description": entry.description,
                "learning_rate": entry.learning_rate,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
