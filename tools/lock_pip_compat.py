"""Make the hashed lock installable by pip older than 23.3, the pip Azure's remote build (Oryx) may run.

pip before 23.3 (fixed by "Improve extras resolution for multiple constraints on same base package", pypa/pip
#11924, 23.3 changelog) treats a package pinned only with extras (``httpx[http2]==0.28.1``) as a different
requirement from the same package required without them by another one (githubkit's ``httpx>=0.23``), and in
hash-checking mode refuses the latter: "In --require-hashes mode, all requirements must have their versions pinned
with ==. These do not: httpx<1.0.0,>=0.23.0 ... (from githubkit)". Stripping the extras does not help either: then
githubkit's own ``hishel[async,httpx]`` is the unpinned one. What works with every pip (and uv): each
``name[extras]==v`` entry keeps its extras and is followed by a plain ``name==v`` twin with the same hashes.
Measured on this project: pip 23.2.1 ``install --dry-run -r requirements.txt`` failed before, succeeds after.

``make lock`` runs ``python -m tools.lock_pip_compat requirements.txt`` after uv writes the lock; the operation is
idempotent. tests/test_requirements_pip.py checks the committed lock has every twin.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EXTRAS_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\[[^\]]+\](?P<pin>==\S+)(?P<rest> \\)?$")


def add_plain_twins(text: str) -> str:
    """Return the lock with a plain twin after every pin that carries extras (no change when twins exist)."""
    lines = text.split("\n")
    pinned = {m.group(0).split(" ")[0] for m in (re.match(r"^[A-Za-z0-9_.-]+==\S+", line) for line in lines) if m}
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = EXTRAS_PIN.match(line)
        if match is None:
            out.append(line)
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].startswith("    --hash="):
            end += 1
        hashes = lines[index + 1 : end]
        while end < len(lines) and lines[end].startswith("    #"):  # uv's "# via" annotation of the entry
            end += 1
        out.extend(lines[index:end])
        plain = f"{match['name']}{match['pin']}"
        if plain not in pinned:
            out.append(f"{plain}{match['rest'] or ''}")
            out.extend(hashes)
            out.append("    # plain twin of the entry above, for pip < 23.3 (tools/lock_pip_compat.py)")
        index = end
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tools.lock_pip_compat <requirements.txt>", file=sys.stderr)
        return 2
    path = Path(argv[0])
    text = path.read_text(encoding="utf-8")
    updated = add_plain_twins(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
