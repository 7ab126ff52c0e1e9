"""Training credits per million trained tokens, per base model.

The six Cortex rates follow Snowflake's Service Consumption Table (Cortex Fine-tuning, training) as
best we know it when this was written; Snowflake changes its rates, so check the current table and
update the rows (BaseModel.training_credits_per_million_tokens) where an account needs exact numbers.
smollm2-135m is self-hosted and costs no credits.
"""
from django.db import migrations

RATES = {
    "llama3-8b": 1.0,
    "llama3-70b": 3.8,
    "llama3.1-8b": 1.0,
    "llama3.1-70b": 3.8,
    "mistral-7b": 1.0,
    "mixtral-8x7b": 1.9,
    "smollm2-135m": 0.0,
}


def seed(apps, schema_editor):
    BaseModel = apps.get_model("catalog", "BaseModel")
    for name, rate in RATES.items():
        BaseModel.objects.filter(name=name).update(training_credits_per_million_tokens=rate)


class Migration(migrations.Migration):
    # Written against 0003 (0004/0005 came from parallel work); pointed at 0005 in the shared checkout so
    # the graph has one leaf. Only the seeded rates matter, so either parent works.
    dependencies = [("catalog", "0005_stages")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
