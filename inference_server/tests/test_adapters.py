"""Finding adapter directories: exact ids, base-model matching, incomplete dirs."""
from __future__ import annotations

import json

import pytest

from inference_server.adapters import scan_adapters_dir, static_spec
from inference_server.tests.conftest import BASE_NAME, DIR_ADAPTER, FOREIGN_ADAPTER, STATIC_ADAPTER


def test_scan_keeps_only_adapters_for_this_base_model(models, tmp_path):
    scan = scan_adapters_dir(models.adapters_dir, BASE_NAME)
    assert DIR_ADAPTER in scan.matching and scan.matching[DIR_ADAPTER].source == "dir"
    assert FOREIGN_ADAPTER not in scan.matching
    assert scan.foreign[FOREIGN_ADAPTER] == "some-other-model"
    assert scan_adapters_dir(tmp_path / "missing", BASE_NAME).matching == {}

    # metadata written before the weights: not served yet
    (tmp_path / "half-written").mkdir()
    (tmp_path / "half-written" / "studio_adapter.json").write_text(json.dumps({"model": "X", "base_model": BASE_NAME}))
    assert scan_adapters_dir(tmp_path, BASE_NAME).matching == {}


def test_static_adapter_for_another_base_model_is_refused(models):
    spec = static_spec(STATIC_ADAPTER, models.static_adapter, BASE_NAME)
    assert spec.adapter_id == STATIC_ADAPTER and spec.source == "static"
    with pytest.raises(ValueError, match="some-other-model"):
        static_spec("X", models.adapters_dir / "other-base", BASE_NAME)
    with pytest.raises(ValueError, match="no adapter_config.json"):
        static_spec("X", models.root, BASE_NAME)
