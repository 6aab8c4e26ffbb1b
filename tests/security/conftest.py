"""What the security tests share: a compromised fake model, its client, and the check for hostile output."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from shared.ai.client import make_openai_client
from shared.settings import Settings
from tools.fakes.openai import FakeOpenAI

#: What must never appear in anything Reynolds posts: outside links and images, markers (raw or escaped),
#: bidi overrides; tag characters and mass mentions are checked apart.
ALWAYS_HOSTILE = ("://evil.example", "](http", "<!--", "&lt;!--", "\u202e")


def hostile(text: str, *needles: str) -> list[str]:
    """Everything hostile found in ``text``: the ``ALWAYS_HOSTILE`` needles, the caller's own (secrets, leaked
    rows), Unicode tag characters and mass mentions. Empty when the text is safe to post."""
    found = [needle for needle in (*ALWAYS_HOSTILE, *needles) if needle and needle in text]
    if any(0xE0000 <= ord(char) <= 0xE007F for char in text):
        found.append("tag characters")
    if "@everyone" in text or "@here" in text:
        found.append("mass mention")
    return found


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    """A fake Azure OpenAI that answers whatever the test scripts (it obeys any instruction it is given)."""
    with FakeOpenAI(model="gpt-test") as server:
        yield server


@pytest.fixture
def client(model: FakeOpenAI) -> openai.OpenAI:
    """The real openai client pointed at ``model``."""
    made = make_openai_client(Settings.model_validate({"AZURE_OPENAI_ENDPOINT": model.endpoint}), api_key="k")
    assert made is not None
    return made
