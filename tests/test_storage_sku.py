"""Host storage is locally redundant: the pinned storage-account AVM module defaults to Standard_GRS (its compiled
template in the Bicep fixtures), and Reynolds' host storage holds only a re-deployable package and the Durable task
hub's transient state, so main.bicep sets Standard_LRS, one of the module's allowed values."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tools.bicepcheck.fixtures import fixtures_dir

ROOT = Path(__file__).resolve().parents[1]


def test_host_storage_is_lrs_and_the_module_allows_it() -> None:
    main = (ROOT / "infra" / "main.bicep").read_text()
    pin = re.search(r"'br/public:avm/res/storage/storage-account:(\d+\.\d+\.\d+)'", main)
    assert pin is not None
    block = main[pin.end() : main.index("\n}\n", pin.end())]
    assert "skuName: 'Standard_LRS'" in block
    module = fixtures_dir(ROOT) / "avm" / "storage" / "storage-account" / pin.group(1) / "main.json"
    sku = json.loads(module.read_text())["parameters"]["skuName"]
    assert sku["defaultValue"] == "Standard_GRS"  # what an omitted skuName would deploy
    assert "Standard_LRS" in sku["allowedValues"]
