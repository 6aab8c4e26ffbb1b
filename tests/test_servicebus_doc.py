"""The Service Bus contract lives where a producer looks for it (docs/servicebus.md, linked from the README and
the deploy guide) and names what the code reads and refuses."""

from __future__ import annotations

import re
from pathlib import Path

from shared.platforms.servicebus import contract

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "servicebus.md"


def test_the_contract_names_every_property_content_type_and_dead_letter_reason() -> None:
    text = DOC.read_text(encoding="utf-8")
    props = [value for name, value in vars(contract).items() if name.startswith("PROP_")]
    assert len(props) == 5
    missing = [p for p in props if f"`{p}`" not in text]
    missing += [t for t in sorted(contract.ACCEPTED_CONTENT_TYPES) if f"`{t}`" not in text]
    missing += [r.value for r in contract.PoisonReason if f"`{r.value}`" not in text]
    assert missing == []
    assert f"over {contract.MAX_MESSAGE_BYTES // 1024} KB" in text
    assert f"`{contract.CLOUDEVENTS_CONTENT_TYPE}`" in text


def test_readme_and_deploy_guide_point_to_it_and_nowhere_else() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "(docs/servicebus.md)" in readme
    assert "(servicebus.md)" in deploy
    # The table lives in one place only.
    assert "| `MessageId` |" not in readme
    assert not re.search(r"contract[^.]*shared/loop/envelope\.py", deploy)
