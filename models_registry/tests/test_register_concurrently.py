"""Two jobs that finish at the same moment with the same requested model name both register: the later
one under Snowflake's suffixed name, never an IntegrityError that fails a trained job. Run on both
metadata databases; PostgreSQL is where it failed (both transactions chose the same free name)."""
from __future__ import annotations

import threading
import time

from django.db import connection, transaction

from access.bootstrap import bootstrap
from catalog import accountdata
from jobs.models import FineTuneJob
from models_registry import registry
from models_registry.models import FineTunedModel


def finished_job(name: str) -> FineTuneJob:
    job = FineTuneJob.objects.create(base_model="tiny-llama", database="REG", schema="PUBLIC", requested_name=name,
                                     training_data="SELECT prompt, completion FROM t", warehouse="COMPUTE_WH",
                                     role="ACCOUNTADMIN", status="SUCCESS")
    staging = registry.staging_dir(job.id)
    staging.mkdir(parents=True)
    (staging / "adapter_model.safetensors").write_bytes(b"weights")
    return job


def test_two_jobs_registering_one_name_at_once_get_the_name_and_its_first_suffix(transactional_db, settings, tmp_path):
    settings.MODEL_STORE, settings.DUCKDB_DIR = tmp_path / "models", tmp_path / "duckdb"
    bootstrap(password="pw-for-tests-1", demo=False)
    accountdata.create_database("REG")
    first, second = finished_job("SUPPORT"), finished_job("SUPPORT")
    registered: dict[str, str] = {}
    errors: list[BaseException] = []

    def register_second() -> None:
        try:
            registered["second"] = registry.register(second, registry.staging_dir(second.id), {}).name
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    with transaction.atomic():  # the first job's registration, not yet committed when the second starts
        registered["first"] = registry.register(first, registry.staging_dir(first.id), {}).name
        racer = threading.Thread(target=register_second)
        racer.start()
        time.sleep(0.5)  # the second is inside its own registration, waiting on this transaction
        assert "second" not in registered and not errors
    racer.join(60)

    assert not errors, errors
    assert registered == {"first": "SUPPORT", "second": "SUPPORT_1"}
    models = dict(FineTunedModel.objects.filter(schema__database__name="REG").values_list("name", "job_id"))
    assert models == {"SUPPORT": first.id, "SUPPORT_1": second.id}
    assert (registry.adapters_dir() / second.id / "adapter_model.safetensors").read_bytes() == b"weights"
