"""``python -m tools.bicepcheck [repo root]``: print every finding as ``file:line: [rule] message``; exit 1 if any."""

from __future__ import annotations

import sys
from pathlib import Path

from tools.bicepcheck import Checker, Fixtures, FixturesMissing, fixtures_dir


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[2]
    try:
        fixtures = Fixtures(fixtures_dir(root))
    except FixturesMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    findings = Checker(root, fixtures).run()
    for finding in findings:
        print(finding)
    print(f"{len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
