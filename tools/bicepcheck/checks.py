"""Checks of ``infra/`` against upstream rules and reference data; each returns findings that name file and line.

* ``check_module_calls``: every module call against the called module's signature (a pinned AVM version's
  compiled ``main.json`` from the fixtures, or a local ``.bicep`` file): parameters exist, required ones are
  passed, nested object keys exist in the parameter's type (``definitions``, ``properties``,
  ``additionalProperties``, ``discriminator``), literal values are in ``allowedValues`` and of the declared
  type, and every ``<module>.outputs.<name>`` read exists. A pin without a fixture is a finding.
* ``check_resources``: every raw resource's ``type@apiVersion`` exists in the Bicep type library, every property
  name set exists (recursively through object, array, union and discriminated types), a literal value of a closed
  enum or a discriminator names one of its values, and no read-only property is set (on an ``existing`` resource
  everything but name/parent/scope is read-only). Open enums (string literals plus ``StringType``) accept any
  string, as in Bicep.
* ``check_runtime_existing``: the Bicep compiler's rules for an ``existing`` resource whose ``name``, ``parent``
  or ``scope`` is a value known only at run time (a module output, a runtime property, or a variable built from
  one). Modelled on Azure/bicep ``src/Bicep.Core``:

  - ``TypeSystem/Providers/ResourceTypeResolver.CreateExistingResourceBodyTypeOverrides`` runs
    ``DeployTimeConstantValidator`` on such an existing resource's identifier properties (``name``, ``scope``,
    ``parent`` = ``AzResourceTypeProvider.UniqueIdentifierProperties``); when one is a runtime value it clears
    the ``ReadableAtDeployTime`` flag of those properties and the ``DeployTimeConstant`` flag of ``id``/``name``.
  - **BCP307** (``TypeSystem/NestedRuntimeMemberAccessValidator.FlagIfNotReadableAtDeployTime``, message
    ``DiagnosticBuilder.NestedRuntimePropertyAccessNotSupported``): reading any property of that resource other
    than ``AzResourceTypeProvider.ReadWriteDeployTimeConstantPropertyNames`` (``id``, ``name``, ``type``,
    ``apiVersion``), e.g. ``.properties.x``, is an error.
  - **BCP120** (``TypeSystem/DeployTimeConstantViolationVisitor.FlagDeployTimeConstantViolation``, message
    ``DiagnosticBuilder.RuntimeValueNotAllowedInProperty``): a deploy-time-constant property of a deployed
    resource or module (``name``, ``parent``, ``scope`` and ``AzResourceTypeProvider
    .WriteOnlyDeployTimeConstantPropertyNames`` such as ``location``/``tags``/``sku``; containers collected by
    ``DeployTimeConstantContainerVisitor``) may not take a runtime value, so such an existing resource cannot
    be the ``parent`` or ``scope`` of a deployed one.
* ``check_flex_site``: a Flex Consumption site (``functionAppConfig`` set) must not set the site properties and
  app settings Microsoft lists under "Flex Consumption plan deprecations" (MicrosoftDocs/azure-docs
  ``articles/azure-functions/functions-app-settings.md``), and must not fall back to a module default that does.
* ``check_parameters_file``: every ``main.bicep`` parameter without a default is mapped in
  ``main.parameters.json``, and every mapped name is a parameter (ARM rejects unknown parameters).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.bicepcheck.fixtures import FLAG_READ_ONLY, Fixtures, TypeRef
from tools.bicepcheck.source import UNKNOWN, BicepFile, Declaration, Finding

#: AzResourceTypeProvider.ReadWriteDeployTimeConstantPropertyNames: always readable, even on such a resource.
READABLE_AT_DEPLOY_TIME = frozenset({"id", "name", "type", "apiVersion"})
#: AzResourceTypeProvider.UniqueIdentifierProperties.
IDENTIFIER_PROPERTIES = ("name", "scope", "parent")
#: AzResourceTypeProvider.WriteOnlyDeployTimeConstantPropertyNames (deploy-time constant on deployed resources).
WRITE_ONLY_DEPLOY_TIME_CONSTANT = (
    "location",
    "kind",
    "subscriptionId",
    "resourceGroup",
    "managedBy",
    "extendedLocation",
    "zones",
    "placement",
    "plan",
    "sku",
    "identity",
    "managedByExtended",
    "tags",
    "asserts",
)
#: Keys Bicep adds to every resource body (SetBicepResourceProperties): not in the type library.
BICEP_RESOURCE_KEYS = frozenset({"parent", "scope", "dependsOn"})

#: "Flex Consumption plan deprecations": site properties (set either on the site or in siteConfig).
FLEX_REJECTED_SITE_PROPERTIES = frozenset(
    name.lower()
    for name in (
        "alwaysOn",
        "containerSize",
        "ftpsState",
        "isReserved",
        "IsXenon",
        "javaVersion",
        "LinuxFxVersion",
        "netFrameworkVersion",
        "powerShellVersion",
        "functionAppScaleLimit",
        "preWarmedInstanceCount",
        "use32BitWorkerProcess",
        "vnetBackupRestoreEnabled",
        "vnetContentShareEnabled",
        "vnetImagePullEnabled",
        "vnetRouteAllEnabled",
        "windowsFxVersion",
    )
)
#: "Flex Consumption plan deprecations": application settings.
FLEX_DEPRECATED_APP_SETTINGS = frozenset(
    {
        "ENABLE_ORYX_BUILD",
        "FUNCTIONS_EXTENSION_VERSION",
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_WORKER_RUNTIME_VERSION",
        "FUNCTIONS_MAX_HTTP_CONCURRENCY",
        "FUNCTIONS_WORKER_PROCESS_COUNT",
        "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTOVERVNET",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_DNS_SERVER",
        "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
        "WEBSITE_NODE_DEFAULT_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
        "WEBSITE_VNET_ROUTE_ALL",
    }
)

ARM_TYPES = {
    "string": str,
    "securestring": str,
    "int": int,
    "bool": bool,
    "object": dict,
    "secureobject": dict,
    "array": list,
}


# ---- module signatures ------------------------------------------------------------------------------------------
@dataclass
class ModuleSignature:
    """What a module accepts and returns: ARM-style parameter specs (``type``, ``allowedValues``, ...)."""

    source: str  # how findings name the module
    parameters: dict[str, Mapping[str, Any]]
    outputs: set[str]
    definitions: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``spec`` with ``$ref`` into ``definitions`` merged in (the referencing spec's own keys win)."""
        resolved = dict(spec)
        seen = set()
        while "$ref" in resolved:
            name = str(resolved.pop("$ref")).rsplit("/", 1)[1]
            if name in seen or name not in self.definitions:
                break
            seen.add(name)
            resolved = {**self.definitions[name], **resolved}
        return resolved

    def required(self) -> list[str]:
        return [name for name, spec in self.parameters.items() if _is_required(self.resolve(spec))]


def _is_required(spec: Mapping[str, Any]) -> bool:
    return "defaultValue" not in spec and not spec.get("nullable", False)


def avm_signature(template: Mapping[str, Any], source: str) -> ModuleSignature:
    return ModuleSignature(
        source=source,
        parameters=dict(template.get("parameters") or {}),
        outputs=set(template.get("outputs") or {}),
        definitions=dict(template.get("definitions") or {}),
    )


def local_signature(module: BicepFile) -> ModuleSignature:
    parameters: dict[str, Mapping[str, Any]] = {}
    for name, body in module.parameters.items():
        spec: dict[str, Any] = {"type": str(body.get("type", "")).lower()}
        if body.get("default") is not None or re.search(
            rf"^\s*param\s+{re.escape(name)}\s+[^=\n]+=", module.text, re.MULTILINE
        ):
            spec["defaultValue"] = body.get("default")
        for decorator in body.get("decorators") or []:
            if decorator.get("type") == "allowed":
                spec["allowedValues"] = list(decorator.get("argument") or [])
        parameters[name] = spec
    return ModuleSignature(source=module.relative, parameters=parameters, outputs=set(module.outputs))


# ---- the checks -------------------------------------------------------------------------------------------------
class Checker:
    """Runs every check over the Bicep files under ``infra/``."""

    def __init__(self, repo_root: Path, fixtures: Fixtures, infra: Path | None = None) -> None:
        self.root = repo_root
        self.infra = infra or repo_root / "infra"
        self.fixtures = fixtures
        self._files: dict[Path, BicepFile] = {}

    def file(self, path: Path) -> BicepFile:
        path = path.resolve()
        if path not in self._files:
            self._files[path] = BicepFile.load(path, self.root)
        return self._files[path]

    def bicep_files(self) -> list[BicepFile]:
        return [self.file(p) for p in sorted(self.infra.rglob("*.bicep"))]

    def run(self) -> list[Finding]:
        findings: list[Finding] = []
        for src in self.bicep_files():
            findings += self.check_module_calls(src)
            findings += self.check_resources(src)
            findings += check_runtime_existing(src)
            findings += self.check_flex_site(src)
        findings += check_parameters_file(self.file(self.infra / "main.bicep"), self.infra / "main.parameters.json")
        return sorted(set(findings), key=lambda f: (f.file, f.line, f.rule, f.message))

    # ---- module calls --------------------------------------------------------------------------------------
    def signature(self, src: BicepFile, decl: Declaration) -> ModuleSignature | Finding:
        detail = decl.node.get("detail") or {}
        if decl.node.get("type") == "local":
            path = (src.path.parent / str(detail.get("path"))).resolve()
            if not path.is_file():
                return Finding(
                    src.relative,
                    src.declaration_line("module", decl.symbol),
                    "module-missing",
                    f"module '{decl.symbol}' calls {detail.get('path')}, which does not exist",
                )
            return local_signature(self.file(path))
        registry, version = str(detail.get("path", "")), str(detail.get("tag", ""))
        template = self.fixtures.avm_template(registry, version)
        if template is None:
            missing = self.fixtures.avm_template_path(registry, version)
            return Finding(
                src.relative,
                src.declaration_line("module", decl.symbol),
                "avm-fixture-missing",
                f"module '{decl.symbol}' pins br/public:{registry}:{version} but the reference data has no "
                f"{missing.relative_to(self.fixtures.root).as_posix()} (in {self.fixtures.root}): ask for that "
                f"fixture (do not skip the check)",
            )
        return avm_signature(template, f"br/public:{registry}:{version}")

    def check_module_calls(self, src: BicepFile) -> list[Finding]:
        findings: list[Finding] = []
        signatures: dict[str, ModuleSignature] = {}
        for decl in src.modules.values():
            signature = self.signature(src, decl)
            if isinstance(signature, Finding):
                findings.append(signature)
                continue
            signatures[decl.symbol] = signature
            params = decl.body.get("params") or {}
            if not isinstance(params, Mapping):
                continue
            for name in signature.required():
                if name not in params:
                    findings.append(
                        Finding(
                            src.relative,
                            src.key_line("module", decl.symbol, ["params"]),
                            "module-param-required",
                            f"module '{decl.symbol}' ({signature.source}) requires parameter '{name}', not passed",
                        )
                    )
            for name, raw in params.items():
                line = src.key_line("module", decl.symbol, ["params", name])
                if name not in signature.parameters:
                    findings.append(
                        Finding(
                            src.relative,
                            line,
                            "module-param-unknown",
                            f"module '{decl.symbol}' ({signature.source}) has no parameter '{name}'",
                        )
                    )
                    continue
                spec = signature.resolve(signature.parameters[name])
                for path, message in check_value(src.evaluate(raw), spec, signature, [name]):
                    findings.append(
                        Finding(
                            src.relative,
                            src.key_line("module", decl.symbol, ["params", *path]),
                            "module-param-value",
                            f"module '{decl.symbol}' ({signature.source}): {message}",
                        )
                    )
        for chain in src.chains(src.parsed):
            head = chain[0]
            if head not in signatures:
                continue
            rest = [part for part in chain[1:] if not part.startswith("[")]
            if len(rest) >= 2 and rest[0] == "outputs" and rest[1] not in signatures[head].outputs:
                line = src.text_line(
                    rf"\b{re.escape(head)}\b(\[[^\]]*\])?\s*\.\s*outputs\s*\.\s*{re.escape(rest[1])}\b"
                )
                findings.append(
                    Finding(
                        src.relative,
                        line,
                        "module-output-unknown",
                        f"module '{head}' ({signatures[head].source}) has no output '{rest[1]}' "
                        f"(outputs: {', '.join(sorted(signatures[head].outputs))})",
                    )
                )
        return findings

    # ---- raw resources -------------------------------------------------------------------------------------
    def check_resources(self, src: BicepFile) -> list[Finding]:
        findings: list[Finding] = []
        for decl in src.resources.values():
            line = src.declaration_line("resource", decl.symbol)
            body = self.fixtures.resource_body(decl.type_name, decl.api_version)
            if body is None:
                if self.fixtures.has_library(decl.type_name, decl.api_version):
                    message = (
                        f"resource '{decl.symbol}': type {decl.type_name}@{decl.api_version} does not exist "
                        f"in the Bicep type library for that API version"
                    )
                    findings.append(Finding(src.relative, line, "resource-type-unknown", message))
                else:
                    message = (
                        f"resource '{decl.symbol}': no type definitions for "
                        f"{decl.type_name.split('/')[0]}@{decl.api_version} in the reference data: ask for "
                        f"the fixture (do not skip the check)"
                    )
                    findings.append(Finding(src.relative, line, "types-fixture-missing", message))
                continue
            value = {
                key: src.evaluate(raw) if key not in ("name", "parent", "scope") else UNKNOWN
                for key, raw in decl.body.items()
            }
            for path, rule, message in check_object(value, body, [], existing=decl.existing, top=True):
                findings.append(
                    Finding(
                        src.relative,
                        src.key_line("resource", decl.symbol, path),
                        rule,
                        f"resource '{decl.symbol}' ({decl.type_name}@{decl.api_version}): {message}",
                    )
                )
        return findings

    # ---- Flex Consumption site -----------------------------------------------------------------------------
    def check_flex_site(self, src: BicepFile) -> list[Finding]:
        findings: list[Finding] = []
        for decl in src.modules.values():
            detail = decl.node.get("detail") or {}
            params = decl.body.get("params") or {}
            if not str(detail.get("path", "")).endswith("/web/site") or not isinstance(params, Mapping):
                continue
            if "functionAppConfig" not in params:
                continue
            for name in params:
                if name.lower() in FLEX_REJECTED_SITE_PROPERTIES:
                    findings.append(_flex(src, src.key_line("module", decl.symbol, ["params", name]), decl, name))
            site_config = src.evaluate(params["siteConfig"]) if "siteConfig" in params else None
            if isinstance(site_config, dict):
                for key in site_config:
                    if key.lower() in FLEX_REJECTED_SITE_PROPERTIES:
                        line = src.key_line("module", decl.symbol, ["params", "siteConfig", key])
                        findings.append(_flex(src, line, decl, f"siteConfig.{key}"))
            elif "siteConfig" not in params:
                template = self.fixtures.avm_template(str(detail.get("path")), str(detail.get("tag"))) or {}
                default = ((template.get("parameters") or {}).get("siteConfig") or {}).get("defaultValue") or {}
                rejected = sorted(k for k in default if k.lower() in FLEX_REJECTED_SITE_PROPERTIES)
                if rejected:
                    findings.append(
                        Finding(
                            src.relative,
                            src.declaration_line("module", decl.symbol),
                            "flex-site-config",
                            f"module '{decl.symbol}' leaves siteConfig at the module default, which sets "
                            f"{', '.join(rejected)}: Flex Consumption rejects them; pass a siteConfig without them",
                        )
                    )
            settings = src.evaluate(params.get("appSettingsKeyValuePairs"))
            if isinstance(settings, dict):
                for key in settings:
                    if key.upper() in FLEX_DEPRECATED_APP_SETTINGS:
                        findings.append(
                            Finding(
                                src.relative,
                                src.text_line(rf"^\s*{re.escape(key)}\s*:"),
                                "flex-app-setting",
                                f"app setting {key} is deprecated on Flex Consumption (functionAppConfig replaces it)",
                            )
                        )
        for decl in src.resources.values():
            properties = decl.body.get("properties")
            if decl.type_name.lower() != "microsoft.web/sites" or not isinstance(properties, Mapping):
                continue
            if "functionAppConfig" not in properties:
                continue
            site_config = src.evaluate(properties.get("siteConfig"))
            candidates = [([key], key) for key in properties]
            if isinstance(site_config, dict):
                candidates += [(["siteConfig", key], f"siteConfig.{key}") for key in site_config]
            for path, label in candidates:
                if path[-1].lower() in FLEX_REJECTED_SITE_PROPERTIES:
                    findings.append(
                        _flex(src, src.key_line("resource", decl.symbol, ["properties", *path]), decl, label)
                    )
        return findings


def _flex(src: BicepFile, line: int, decl: Declaration, label: str) -> Finding:
    return Finding(
        src.relative,
        line,
        "flex-site-config",
        f"'{decl.symbol}' is a Flex Consumption site (functionAppConfig) and sets {label}, which the "
        f'Flex Consumption plan rejects ("Flex Consumption plan deprecations"): remove it',
    )


# ---- values against ARM parameter types -------------------------------------------------------------------------
def check_value(
    value: Any, spec: Mapping[str, Any], signature: ModuleSignature, path: list[str]
) -> Iterator[tuple[list[str], str]]:
    """Problems of a (partly) literal ``value`` against an ARM parameter/property ``spec``."""
    if value is UNKNOWN:
        return
    spec = signature.resolve(spec)
    arm_type = str(spec.get("type", "")).lower()
    expected = ARM_TYPES.get(arm_type)
    label = ".".join(path)
    if expected is not None and value is not None and not _is_type(value, expected):
        yield path, f"'{label}' must be {arm_type}, got {type(value).__name__} {value!r}"
        return
    allowed = spec.get("allowedValues")
    if allowed is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is not UNKNOWN and not isinstance(item, dict | list) and item not in allowed:
                yield path, f"'{label}' = {item!r} is not one of the allowed values {allowed}"
    if isinstance(value, dict):
        properties: dict[str, Any] = dict(spec.get("properties") or {})
        discriminator = spec.get("discriminator")
        if isinstance(discriminator, Mapping):
            mapping = discriminator.get("mapping") or {}
            chosen = value.get(discriminator.get("propertyName"))
            variants = [mapping[chosen]] if isinstance(chosen, str) and chosen in mapping else list(mapping.values())
            for variant in variants:
                properties.update(signature.resolve(variant).get("properties") or {})
            properties.setdefault(str(discriminator.get("propertyName")), {"type": "string"})
        typed = "properties" in spec or isinstance(discriminator, Mapping)
        additional = spec.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                yield from check_value(item, properties[key], signature, [*path, key])
            elif isinstance(additional, Mapping):
                yield from check_value(item, additional, signature, [*path, key])
            elif typed and not additional:
                known = ", ".join(sorted(properties))
                yield [*path, key], f"'{label}' has no key '{key}' (known keys: {known})"
        if typed:
            for key, prop in properties.items():
                if key not in value and _is_required(signature.resolve(prop)):
                    yield path, f"'{label}' is missing required key '{key}'"
    elif isinstance(value, list) and isinstance(spec.get("items"), Mapping):
        for item in value:
            yield from check_value(item, spec["items"], signature, path)


def _is_type(value: Any, expected: type) -> bool:
    if value is UNKNOWN:
        return True
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


# ---- values against resource types ------------------------------------------------------------------------------
def _object_members(ref: TypeRef | None, value: Mapping[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """(properties, additionalProperties) of each object shape ``ref`` may take for ``value``."""
    if ref is None:
        return []
    node = ref.node
    kind = ref.kind
    if kind == "ObjectType":
        return [(dict(node.get("properties") or {}), node.get("additionalProperties"))]
    if kind == "DiscriminatedObjectType":
        base = dict(node.get("baseProperties") or {})
        elements = node.get("elements") or {}
        chosen = value.get(str(node.get("discriminator")))
        keys = [chosen] if isinstance(chosen, str) and chosen in elements else list(elements)
        members = []
        for key in keys:
            for properties, additional in _object_members(ref.library.ref(elements[key]), value):
                members.append(({**base, **properties}, additional))
        return members or [(base, None)]
    if kind == "UnionType":
        members = []
        for element in node.get("elements") or []:
            members += _object_members(ref.library.ref(element), value)
        return members
    return []


def _array_item(ref: TypeRef | None) -> TypeRef | None:
    if ref is None:
        return None
    if ref.kind == "ArrayType":
        return ref.library.ref(ref.node.get("itemType"))
    if ref.kind == "UnionType":
        for element in ref.node.get("elements") or []:
            item = _array_item(ref.library.ref(element))
            if item is not None:
                return item
    return None


def check_object(
    value: Mapping[str, Any], ref: TypeRef, path: list[str], *, existing: bool = False, top: bool = False
) -> Iterator[tuple[list[str], str, str]]:
    """(key path, rule, message) for every unknown or read-only property set in ``value``."""
    members = _object_members(ref, value)
    if not members:
        return
    checked: set[str] = set()
    if ref.kind == "DiscriminatedObjectType":
        discriminator = str(ref.node.get("discriminator"))
        variants = sorted(ref.node.get("elements") or {})
        chosen = value.get(discriminator)
        if isinstance(chosen, str) and chosen not in variants:
            label = ".".join([*path, discriminator])
            yield [*path, discriminator], "resource-property-value", f"'{label}' = {chosen!r} is not one of {variants}"
            checked.add(discriminator)
    for key, item in value.items():
        if (top and key in BICEP_RESOURCE_KEYS) or key in checked:
            continue
        here = [*path, key]
        label = ".".join(here)
        found = [(props[key], additional) for props, additional in members if key in props]
        if not found:
            found = [(p, a) for props, a in members for k, p in props.items() if k.lower() == key.lower()]
        if not found:
            additional = next((a for _, a in members if a), None)
            if additional is not None:
                yield from _check_item(item, ref.library.ref(additional), here)
                continue
            known = sorted({k for props, _ in members for k in props})
            yield here, "resource-property-unknown", f"property '{label}' does not exist (known: {', '.join(known)})"
            continue
        prop = found[0][0]
        flags = int(prop.get("flags", 0))
        if existing and top and key not in ("name", "scope", "parent", "dependsOn"):
            yield (
                here,
                "resource-property-read-only",
                (f"'{label}' is read-only on an existing resource (only name, parent and scope may be set)"),
            )
            continue
        if flags & FLAG_READ_ONLY:
            yield here, "resource-property-read-only", f"'{label}' is read-only (set by Azure, never by a template)"
            continue
        yield from _check_item(item, ref.library.ref(prop.get("type")), here)


def _closed_literals(ref: TypeRef) -> set[str] | None:
    """The allowed strings of a closed enum (a StringLiteralType, or a union made only of them), else None."""
    if ref.kind == "StringLiteralType":
        return {str(ref.node.get("value"))}
    if ref.kind != "UnionType":
        return None
    values: set[str] = set()
    for element in ref.node.get("elements") or []:
        member = ref.library.ref(element)
        if member is None or member.kind != "StringLiteralType":
            return None  # an open enum (string literals plus StringType) accepts any string
        values.add(str(member.node.get("value")))
    return values


def _check_item(item: Any, ref: TypeRef | None, path: list[str]) -> Iterator[tuple[list[str], str, str]]:
    if ref is None or item is UNKNOWN:
        return
    if isinstance(item, str):
        allowed = _closed_literals(ref)
        if allowed is not None and item not in allowed:
            yield path, "resource-property-value", (
                f"'{'.'.join(path)}' = {item!r} is not one of {sorted(allowed)}")
        return
    if isinstance(item, dict):
        yield from check_object(item, ref, path)
    elif isinstance(item, list):
        element = _array_item(ref)
        for entry in item:
            if isinstance(entry, dict) and element is not None:
                yield from check_object(entry, element, path)


# ---- existing resources named from runtime values (BCP307 / BCP120) ---------------------------------------------
def runtime_reason(
    src: BicepFile, expr: Any, runtime_existing: Mapping[str, str], _seen: frozenset[str] = frozenset()
) -> str | None:
    """Why ``expr`` is not a deploy-time constant (a module output, a runtime property, ...), or None."""
    for name in src.functions(expr):
        if name == "reference" or name.lower().startswith("list"):
            return f"the runtime function {name}()"
    for chain in src.chains(expr):
        head = chain[0]
        rest = [part for part in chain[1:] if not part.startswith("[")]
        if head in src.modules and rest[:1] == ["outputs"]:
            suffix = f".{rest[1]}" if len(rest) > 1 else ""
            return f"the output {head}.outputs{suffix} of a module"
        if head in runtime_existing:
            return f"existing resource '{head}', itself named from {runtime_existing[head]}"
        if head in src.resources and rest and rest[0] not in READABLE_AT_DEPLOY_TIME:
            return f"the runtime property {head}.{rest[0]}"
        if head in src.variables and head not in _seen:
            reason = runtime_reason(src, src.variables[head].get("value"), runtime_existing, _seen | {head})
            if reason:
                return f"variable '{head}' (from {reason})"
    return None


def runtime_existing_resources(src: BicepFile) -> dict[str, str]:
    """Existing resources whose name/scope/parent is a runtime value -> why (fixpoint: they can chain)."""
    found: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for decl in src.resources.values():
            if not decl.existing or decl.symbol in found:
                continue
            for key in IDENTIFIER_PROPERTIES:
                if key in decl.body:
                    reason = runtime_reason(src, decl.body[key], found)
                    if reason:
                        found[decl.symbol] = f"{reason} (its {key})"
                        changed = True
                        break
    return found


def check_runtime_existing(src: BicepFile) -> list[Finding]:
    findings: list[Finding] = []
    runtime = runtime_existing_resources(src)
    for chain in src.chains(src.parsed):
        head = chain[0]
        rest = [part for part in chain[1:] if not part.startswith("[")]
        if head not in runtime or not rest or rest[0] in READABLE_AT_DEPLOY_TIME:
            continue
        member = rest[0].removesuffix("()")
        line = src.text_line(rf"\b{re.escape(head)}\s*(\.\s*|\[\s*'){re.escape(member)}\b")
        findings.append(
            Finding(
                src.relative,
                line,
                "BCP307",
                f"'{head}.{rest[0]}' cannot be read: '{head}' is an existing resource named from {runtime[head]}, so "
                f"only id, name, type and apiVersion are readable; use the module's output instead, or name the "
                f"existing resource from a parameter",
            )
        )
    for decl in [*src.resources.values(), *src.modules.values()]:
        if decl.kind == "resource" and decl.existing:
            continue
        keys = IDENTIFIER_PROPERTIES + (WRITE_ONLY_DEPLOY_TIME_CONSTANT if decl.kind == "resource" else ())
        for key in keys:
            if key not in decl.body:
                continue
            reason = runtime_reason(src, decl.body[key], runtime)
            if reason:
                findings.append(
                    Finding(
                        src.relative,
                        src.key_line(decl.kind, decl.symbol, [key]),
                        "BCP120",
                        f"'{key}' of {decl.kind} '{decl.symbol}' must be known at the start of the deployment, but it "
                        f"uses {reason}; pass a parameter (or use the module's outputs) instead",
                    )
                )
    return findings


# ---- main.parameters.json ---------------------------------------------------------------------------------------
def check_parameters_file(main: BicepFile, parameters_file: Path) -> list[Finding]:
    findings: list[Finding] = []
    relative = parameters_file.name
    with contextlib.suppress(ValueError):
        relative = parameters_file.resolve().relative_to(main.path.resolve().parent.parent).as_posix()
    text = parameters_file.read_text(encoding="utf-8")
    mapped = json.loads(text).get("parameters") or {}
    for name, body in main.parameters.items():
        has_default = body.get("default") is not None or re.search(
            rf"^\s*param\s+{re.escape(name)}\s+[^=\n]+=", main.text, re.MULTILINE
        )
        if not has_default and name not in mapped:
            findings.append(
                Finding(
                    main.relative,
                    main.declaration_line("param", name),
                    "parameter-unmapped",
                    f"parameter '{name}' has no default and is not mapped in {relative}: azd would prompt for it",
                )
            )
    lines = text.splitlines()
    for name in mapped:
        if name not in main.parameters:
            line = next((i for i, row in enumerate(lines, start=1) if f'"{name}"' in row), 1)
            findings.append(
                Finding(
                    relative,
                    line,
                    "parameter-unknown",
                    f"'{name}' is not a parameter of {main.relative}: the deployment would fail",
                )
            )
    return findings
