# Tables' and views' owners, comments and declared column types (DuckDB holds the tables themselves).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0003_training_credits'),
    ]

    operations = [
        migrations.CreateModel(
            name='SchemaObject',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=255)),
                ('kind', models.CharField(choices=[('TABLE', 'Table'), ('VIEW', 'View')], default='TABLE', max_length=10)),
                ('owner_role', models.CharField(default='ACCOUNTADMIN', max_length=255)),
                ('comment', models.TextField(blank=True)),
                ('text', models.TextField(blank=True, help_text="a view's CREATE statement as the user wrote it")),
                ('column_types', models.JSONField(blank=True, default=dict, help_text='column name -> declared Snowflake type')),
                ('created_on', models.DateTimeField(auto_now_add=True)),
                ('schema', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='schema_objects', to='catalog.schema')),
            ],
            options={
                'ordering': ['schema__database__name', 'schema__name', 'name'],
                'constraints': [models.UniqueConstraint(fields=('schema', 'name'), name='unique_object_per_schema')],
            },
        ),
    ]
