"""requirements.txt installs with pip older than 23.3 (the pip Azure's remote build may run): every pin that carries
extras has a plain twin with the same hashes (tools/lock_pip_compat.py says why), and ``make lock`` keeps it so.
Measured here: pip 23.2.1 ``install --dry-run -r requirements.txt`` refused the lock without the twins ("all
requirements must have their versions pinned with ==. These do not: httpx<1.0.0,>=0.23.0 ... (from githubkit)") and
accepts it with them; docs/deploy.md ("pip and the remote build") records it."""

from __future__ import annotations

import re
from pathlib import Path

from tools.lock_pip_compat import add_plain_twins

ROOT = Path(__file__).resolve().parents[1]
ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9_.-]+)(?P<extras>\[[^\]]+\])?(?P<pin>==\S+) \\\n"
    r"(?P<hashes>(?:    --hash=\S+(?: \\)?\n)+)",
    re.M,
)


def entries(text: str) -> list[re.Match[str]]:
    return list(ENTRY.finditer(text))


def test_every_pin_with_extras_has_a_plain_twin_with_the_same_hashes() -> None:
    found = entries((ROOT / "requirements.txt").read_text())
    plain = {(m["name"].lower(), m["pin"]): m["hashes"].replace(" \\", "") for m in found if not m["extras"]}
    with_extras = [m for m in found if m["extras"]]
    assert with_extras, "the lock has no pin with extras any more: drop tools/lock_pip_compat.py"
    for m in with_extras:
        twin = plain.get((m["name"].lower(), m["pin"]))
        assert twin is not None, f"{m['name']}{m['extras']}{m['pin']} has no plain twin"
        assert twin == m["hashes"].replace(" \\", ""), m["name"]


def test_add_plain_twins_adds_them_once() -> None:
    lock = (
        "httpx[http2]==0.28.1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via githubkit\n"
        "idna==3.10 \\\n    --hash=sha256:cc\n"
    )
    once = add_plain_twins(lock)
    assert once.splitlines()[:7] == [
        "httpx[http2]==0.28.1 \\", "    --hash=sha256:aa \\", "    --hash=sha256:bb", "    # via githubkit",
        "httpx==0.28.1 \\", "    --hash=sha256:aa \\", "    --hash=sha256:bb",
    ]  # fmt: skip
    assert add_plain_twins(once) == once
    assert add_plain_twins((ROOT / "requirements.txt").read_text()) == (ROOT / "requirements.txt").read_text()


def test_make_lock_keeps_the_twins() -> None:
    makefile = (ROOT / "Makefile").read_text()
    compile_line = makefile.index("-o requirements.txt")
    assert makefile.index("-m tools.lock_pip_compat requirements.txt") > compile_line
