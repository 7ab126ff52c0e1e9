import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0004_schema_objects"),
    ]

    operations = [
        migrations.CreateModel(
            name="Stage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=255)),
                ("owner_role", models.CharField(default="ACCOUNTADMIN", max_length=255)),
                ("comment", models.TextField(blank=True)),
                ("created_on", models.DateTimeField(auto_now_add=True)),
                ("schema", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="stages",
                                             to="catalog.schema")),
            ],
            options={"ordering": ["schema__database__name", "schema__name", "name"]},
        ),
        migrations.AddConstraint(
            model_name="stage",
            constraint=models.UniqueConstraint(fields=("schema", "name"), name="unique_stage_per_schema"),
        ),
        migrations.CreateModel(
            name="LoadedFile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("database", models.CharField(max_length=255)),
                ("schema", models.CharField(max_length=255)),
                ("table", models.CharField(max_length=255)),
                ("file", models.CharField(max_length=1024)),
                ("md5", models.CharField(max_length=32)),
                ("rows_loaded", models.BigIntegerField(default=0)),
                ("loaded_on", models.DateTimeField(auto_now_add=True)),
            ],
            options={"indexes": [models.Index(fields=["database", "schema", "table"], name="loadedfile_table")]},
        ),
    ]
