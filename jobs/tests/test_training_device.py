"""A warehouse's devices decide where its jobs train; a device this machine lacks is a clear error."""
import pytest
import torch

from jobs.tasks import training_device
from trainer import DataError
from warehouses.models import Warehouse


@pytest.mark.django_db
def test_a_cpu_warehouse_trains_on_the_cpu():
    Warehouse.objects.create(name="CPU_WH", devices="cpu")
    assert training_device("CPU_WH") == "cpu"


@pytest.mark.django_db
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_gpu_warehouse_on_a_machine_without_one_says_so():
    Warehouse.objects.create(name="GPU_WH", devices="cuda:0")
    with pytest.raises(DataError, match=r"^Warehouse GPU_WH trains on cuda:0, but the worker running it sees no "
                                        r"CUDA GPU\. .*set the warehouse's devices to cpu\.$"):
        training_device("GPU_WH")


@pytest.mark.django_db
def test_several_gpus_for_one_job_is_refused_with_what_to_do_instead():
    Warehouse.objects.create(name="MULTI_WH", devices="cuda:0-3")
    with pytest.raises(DataError, match=r"lists devices 'cuda:0-3', but a job trains on one device: cpu, cuda or "
                                        r"cuda:N\. Training one job on several GPUs at once is not supported yet"):
        training_device("MULTI_WH")
