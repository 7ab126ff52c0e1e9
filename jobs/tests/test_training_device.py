"""A warehouse's devices decide where its jobs train; a device this machine lacks is a clear error."""
import pytest
import torch

from jobs.tasks import training_devices
from trainer import DataError
from warehouses.models import Warehouse


@pytest.mark.django_db
def test_a_cpu_warehouse_trains_on_the_cpu():
    Warehouse.objects.create(name="CPU_WH", devices="cpu")
    assert training_devices("CPU_WH") == ["cpu"]


@pytest.mark.django_db
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_gpu_warehouse_on_a_machine_without_one_says_so():
    Warehouse.objects.create(name="GPU_WH", devices="cuda:0")
    with pytest.raises(DataError, match=r"^Warehouse GPU_WH trains on cuda:0, but the worker running it sees no "
                                        r"CUDA GPU\. .*set the warehouse's devices to cpu\.$"):
        training_devices("GPU_WH")


@pytest.mark.django_db
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_several_gpus_on_a_machine_without_any_says_so():
    Warehouse.objects.create(name="MULTI_WH", devices="cuda:0-3")
    with pytest.raises(DataError, match=r"^Warehouse MULTI_WH trains on cuda:0-3, but the worker running it sees no "
                                        r"CUDA GPU\."):
        training_devices("MULTI_WH")


@pytest.mark.django_db
def test_a_device_list_that_makes_no_sense_is_refused_naming_the_forms():
    Warehouse.objects.create(name="ODD_WH", devices="gpu0")
    with pytest.raises(DataError, match=r"^Warehouse ODD_WH lists devices 'gpu0', which is none of cpu, cuda, cuda:N, "
                                        r"cuda:N-M or cuda:N,M\. Correct it in the admin console\.$"):
        training_devices("ODD_WH")
