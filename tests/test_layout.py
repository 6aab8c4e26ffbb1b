"""The layout's dependency rules, read from every module's imports (the README's "Layout" map states them).

Each rule fails naming the importing file, the line and the imported module, so a violation reads as a fix.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("shared", "triggers", "orchestrators", "activities", "tools")
PLATFORMS = ("github", "teams", "servicebus")
PLATFORM_SDKS = ("githubkit", "msgraph", "msgraph_core", "kiota_abstractions", "azure.servicebus")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every imported module of ``path`` (relative imports resolved), at any depth (lazy imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            # ``from shared import names`` imports the module ``shared.names``.
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """``file:line imports module`` for every import of ``paths`` that falls under one of ``forbidden``."""
    found = []
    for path in paths:
        for line, module in _imports(path):
            if any(_under(module, prefix) for prefix in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return sorted(set(found))


def test_the_loop_core_imports_no_platform_and_no_functions_sdk() -> None:
    bad = violations(_modules("shared/loop"), ("shared.platforms", "azure.functions", *PLATFORM_SDKS))
    assert bad == [], "shared/loop must stay platform-free:\n" + "\n".join(bad)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_platform_packages_never_import_each_other(platform: str) -> None:
    others = tuple(f"shared.platforms.{p}" for p in PLATFORMS if p != platform)
    bad = violations(_modules(f"shared/platforms/{platform}"), others)
    assert bad == [], f"shared/platforms/{platform} imports another platform:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("sdk", "home"),
    [("githubkit", "shared/platforms/github"), ("msgraph", "shared/platforms/teams"),
     ("azure.servicebus", "shared/platforms/servicebus")],
)
def test_each_platform_sdk_is_imported_only_in_its_platform_package(sdk: str, home: str) -> None:
    # The AI layer's read tools are GitHub's; the service container and the work services may reach a
    # platform only through its package.
    paths = [p for p in _modules("shared") if not str(p.relative_to(ROOT)).startswith(home)]
    bad = violations(paths, (sdk,))
    assert bad == [], f"{sdk} outside {home}:\n" + "\n".join(bad)


def test_the_domain_core_never_imports_the_function_app_layers() -> None:
    bad = violations(
        _modules("shared"), ("azure.functions", "triggers", "orchestrators", "activities", "tools", "tests",
                             "function_app"),
    )
    assert bad == [], "shared/ imports an outer layer:\n" + "\n".join(bad)


def test_triggers_start_orchestrations_by_name_and_never_import_them() -> None:
    bad = violations(_modules("triggers"), ("orchestrators", "activities"))
    assert bad == [], "triggers import orchestrators/activities:\n" + "\n".join(bad)


def test_no_product_module_imports_the_tests() -> None:
    paths = [*_modules(*PRODUCT), ROOT / "function_app.py"]
    bad = violations(paths, ("tests",))
    assert bad == [], "the product depends on its tests:\n" + "\n".join(bad)


def test_shared_top_level_stays_small() -> None:
    modules = sorted(p.name for p in (ROOT / "shared").glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= 10, f"shared/ has {len(modules)} top-level modules: {modules}"


def test_every_package_says_what_belongs_there() -> None:
    undocumented = [
        str(init.relative_to(ROOT))
        for init in _modules("shared", "tools")
        if init.name == "__init__.py" and ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) is None
    ]
    assert undocumented == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rules above can fail: a planted import is reported with its line."""
    planted = ROOT / "shared" / "loop" / "_planted_for_test.py"
    planted.write_text('"""Planted."""\n\nimport os\nfrom shared.platforms.github import events\n')
    try:
        bad = violations([planted], ("shared.platforms",))
    finally:
        planted.unlink()
    assert bad == [
        "shared/loop/_planted_for_test.py:4 imports shared.platforms.github",
        "shared/loop/_planted_for_test.py:4 imports shared.platforms.github.events",
    ]
