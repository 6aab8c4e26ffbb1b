"""Reference data the checks compare ``infra/`` with: ``<repo>/../shared/fixtures/azure-bicep`` (see its README).

* ``avm/<module path>/<version>/main.json``: the compiled ARM template of each pinned Azure Verified Module.
  A module's signature is its ARM ``parameters`` (``type``, ``$ref`` into ``definitions``, ``nullable``,
  ``defaultValue``, ``allowedValues``, object ``properties``/``additionalProperties``, array ``items``,
  ``discriminator``) and ``outputs``.
* ``types/<provider>/<namespace>/<api-version>/types.json``: the Bicep type library (Azure/bicep-types,
  ``src/Bicep.Types/Concrete``): a JSON array of ``{"$type": ...}`` nodes referring to each other with
  ``{"$ref": "#/<index>"}``. ``ResourceType`` has ``name`` ("Type@version") and ``body``; ``ObjectType`` has
  ``properties`` (``type``, ``flags``) and ``additionalProperties``; ``DiscriminatedObjectType`` has
  ``discriminator``, ``baseProperties`` and ``elements``. Property flags are ``ObjectTypePropertyFlags`` in
  ``ObjectType.cs``: Required 1, ReadOnly 2, WriteOnly 4, DeployTimeConstant 8, Identifier 16.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

FIXTURES_ENV = "REYNOLDS_AZURE_BICEP_FIXTURES"

FLAG_REQUIRED = 1
FLAG_READ_ONLY = 2
FLAG_WRITE_ONLY = 4
FLAG_DEPLOY_TIME_CONSTANT = 8


class FixturesMissing(RuntimeError):
    """The reference data directory is not where the checks expect it."""


def fixtures_dir(repo_root: Path) -> Path:
    """``<repo root>/../shared/fixtures/azure-bicep`` (a fresh clone with ``shared/`` beside it), or the directory
    named by ``REYNOLDS_AZURE_BICEP_FIXTURES`` (a worktree that does not sit beside ``shared/``)."""
    override = os.environ.get(FIXTURES_ENV)
    path = Path(override) if override else repo_root.resolve().parent / "shared" / "fixtures" / "azure-bicep"
    if not (path / "README.md").is_file() or not (path / "avm").is_dir() or not (path / "types").is_dir():
        raise FixturesMissing(
            f"Azure Bicep reference data not found at {path} (expected README.md, avm/ and types/). Check out "
            f"shared/ beside the repository, or set {FIXTURES_ENV} to the azure-bicep fixtures directory."
        )
    return path


@dataclass(frozen=True)
class TypeRef:
    """A node of one types.json file."""

    library: TypeLibrary
    index: int

    @property
    def node(self) -> Mapping[str, Any]:
        return self.library.nodes[self.index]

    @property
    def kind(self) -> str:
        return str(self.node.get("$type"))


class TypeLibrary:
    """One ``types.json`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.nodes: list[Mapping[str, Any]] = json.loads(path.read_text(encoding="utf-8"))

    def ref(self, reference: Mapping[str, Any] | None) -> TypeRef | None:
        if not reference or "$ref" not in reference:
            return None
        return TypeRef(self, int(str(reference["$ref"]).rsplit("/", 1)[1]))


class Fixtures:
    """Loads AVM templates and resource types on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- Azure Verified Modules --------------------------------------------------------------------------------
    def avm_template_path(self, registry_path: str, version: str) -> Path:
        """``avm/res/service-bus/namespace`` + ``0.14.1`` -> ``avm/service-bus/namespace/0.14.1/main.json``."""
        relative = registry_path.removeprefix("avm/res/").removeprefix("avm/")
        return self.root / "avm" / relative / version / "main.json"

    def avm_template(self, registry_path: str, version: str) -> Mapping[str, Any] | None:
        path = self.avm_template_path(registry_path, version)
        if not path.is_file():
            return None
        return dict(json.loads(path.read_text(encoding="utf-8")))

    # ---- resource types ----------------------------------------------------------------------------------------
    @cached_property
    def _libraries(self) -> dict[tuple[str, str], list[Path]]:
        """(namespace, api version) -> types.json files, both lower case."""
        found: dict[tuple[str, str], list[Path]] = {}
        for path in sorted((self.root / "types").glob("*/*/*/types.json")):
            namespace, version = path.parent.parent.name.lower(), path.parent.name.lower()
            found.setdefault((namespace, version), []).append(path)
        return found

    def has_library(self, resource_type: str, api_version: str) -> bool:
        namespace = resource_type.split("/", 1)[0].lower()
        return (namespace, api_version.lower()) in self._libraries

    def library_paths(self, resource_type: str, api_version: str) -> list[Path]:
        namespace = resource_type.split("/", 1)[0].lower()
        return self._libraries.get((namespace, api_version.lower()), [])

    @cached_property
    def _loaded(self) -> dict[Path, TypeLibrary]:
        return {}

    def resource_body(self, resource_type: str, api_version: str) -> TypeRef | None:
        """The body type of ``resource_type@api_version``, or None when the type library lacks it."""
        wanted = f"{resource_type}@{api_version}".lower()
        for path in self.library_paths(resource_type, api_version):
            library = self._loaded.setdefault(path, TypeLibrary(path))
            for node in library.nodes:
                if node.get("$type") == "ResourceType" and str(node.get("name", "")).lower() == wanted:
                    return library.ref(node.get("body"))
        return None
