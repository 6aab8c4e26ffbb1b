#!/usr/bin/env python3
"""azd preprovision step: refuse a chat model version a new Azure subscription can no longer deploy, before azd creates
anything.

Microsoft's Azure OpenAI lifecycle policy (source, URL and the date it was read: ``infra/model-lifecycle.json``): a GA
model version is available at least 12 months; a subscription that has never deployed the version loses access to it
12 months after the version's launch (its version string is the launch date); everyone loses it at retirement. Without
this check ``azd up`` fails at the Azure OpenAI deployment, halfway through, with the Function App not yet created.

The decision (``decide``, pure; pinned by tests/test_model_lifecycle.py):

* **refuse** a version whose new-customer window has closed (``today >= launch + 12 months``) or that the schedule
  lists as Deprecated/Legacy/Retired, unless ``REYNOLDS_MODEL_DEPLOYED_BEFORE=true`` says this subscription deployed it
  before (the policy keeps existing customers until retirement);
* **refuse** a version that retires within 30 days (``today >= retirement - 30 days``), existing customer or not;
* **refuse** a model known to reject function tools on Chat Completions (what shared/ai calls);
* **warn** (and go on) for a model/version the table does not list, one whose tool support is not established, and a
  table read more than 90 days ago: the table ages, and a newer model must stay deployable without editing it.

The model and version are the azd environment values the infra reads (``AZURE_OPENAI_MODEL``,
``AZURE_OPENAI_MODEL_VERSION``); unset, the defaults of ``infra/main.parameters.json`` apply, as they do for azd.
Standard library only: azd runs this with the deployer's Python before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "infra" / "model-lifecycle.json"
PARAMETERS = ROOT / "infra" / "main.parameters.json"
MODEL_VARIABLE = "AZURE_OPENAI_MODEL"
VERSION_VARIABLE = "AZURE_OPENAI_MODEL_VERSION"
DEPLOYED_BEFORE_VARIABLE = "REYNOLDS_MODEL_DEPLOYED_BEFORE"
STALE_AFTER_DAYS = 90
CLOSED_LIFECYCLES = ("Deprecated", "Legacy", "Retired")


@dataclass(frozen=True)
class Entry:
    model: str
    version: str
    launch: dt.date
    retirement: dt.date
    lifecycle: str
    chat_function_tools: bool | None


@dataclass(frozen=True)
class Table:
    read_on: dt.date
    new_customer_months: int
    retirement_margin_days: int
    source_url: str
    default: tuple[str, str]
    entries: tuple[Entry, ...]

    def find(self, model: str, version: str) -> Entry | None:
        return next((e for e in self.entries if (e.model, e.version) == (model, version)), None)


@dataclass(frozen=True)
class Verdict:
    action: str  # "ok" | "warn" | "refuse"
    reasons: tuple[str, ...]
    new_customers_until: dt.date | None = None  # last day a new subscription may deploy it
    refuse_from: dt.date | None = None  # first day this check refuses it (retirement margin)


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day ``months`` later (clamped to the month's end: 2024-02-29 + 12 months = 2025-02-28)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def load_table(path: Path = TABLE) -> Table:
    raw = json.loads(path.read_text(encoding="utf-8"))
    entries = tuple(
        Entry(
            model=row["model"],
            version=row["version"],
            launch=dt.date.fromisoformat(row.get("launch", row["version"])),
            retirement=dt.date.fromisoformat(row["retirement"]),
            lifecycle=row["lifecycle"],
            chat_function_tools=row["chat_function_tools"],
        )
        for row in raw["models"]
    )
    return Table(
        read_on=dt.date.fromisoformat(raw["read_on"]),
        new_customer_months=int(raw["rule"]["new_customer_months"]),
        retirement_margin_days=int(raw["rule"]["retirement_margin_days"]),
        source_url=raw["schedule_source"]["url"],
        default=(raw["default"]["model"], raw["default"]["version"]),
        entries=entries,
    )


def decide(table: Table, model: str, version: str, today: dt.date, *, deployed_before: bool = False) -> Verdict:
    """Whether ``azd up`` may deploy ``model`` ``version`` on ``today`` (see the module docstring for the rule)."""
    entry = table.find(model, version)
    stale = (today - table.read_on).days > STALE_AFTER_DAYS
    stale_note = (
        f"infra/model-lifecycle.json was read on {table.read_on}, more than {STALE_AFTER_DAYS} days ago: re-check "
        f"{table.source_url}"
    )
    if entry is None:
        reasons = [
            f"{model} {version} is not in infra/model-lifecycle.json, so its new-customer and retirement dates are "
            f"unknown here; check {table.source_url} (the deployment fails if this subscription may not deploy it)"
        ]
        return Verdict("warn", tuple([*reasons, stale_note] if stale else reasons))
    closes = add_months(entry.launch, table.new_customer_months)
    refuse_from = entry.retirement - dt.timedelta(days=table.retirement_margin_days)
    refusals: list[str] = []
    warnings: list[str] = []
    if not deployed_before:
        if entry.lifecycle in CLOSED_LIFECYCLES:
            refusals.append(
                f"{model} {version} is {entry.lifecycle}: subscriptions that never deployed it cannot deploy it"
            )
        elif today >= closes:
            refusals.append(
                f"{model} {version} launched on {entry.launch}; subscriptions that never deployed it lost access on "
                f"{closes} ({table.new_customer_months} months after launch)"
            )
    if today >= refuse_from:
        refusals.append(
            f"{model} {version} retires on {entry.retirement} (within {table.retirement_margin_days} days from "
            f"{refuse_from})"
        )
    if entry.chat_function_tools is False:
        refusals.append(
            f"{model} rejects function tools on Chat Completions unless reasoning_effort is 'none', and Reynolds' "
            "specialists call Chat Completions with function tools"
        )
    elif entry.chat_function_tools is None:
        warnings.append(
            f"whether {model} accepts function tools on Chat Completions without reasoning_effort is not established "
            "(see tools_source in infra/model-lifecycle.json); specialists fail with HTTP 400 if it does not"
        )
    if stale:
        warnings.append(stale_note)
    until = closes - dt.timedelta(days=1)
    if refusals:
        return Verdict("refuse", tuple(refusals + warnings), until, refuse_from)
    return Verdict("warn" if warnings else "ok", tuple(warnings), until, refuse_from)


def alternative(table: Table, today: dt.date) -> Entry | None:
    """What to suggest instead: the table's default while it qualifies, else the listed model with tools verified
    that new subscriptions can deploy longest (in table order on a tie)."""
    usable = [
        entry
        for entry in table.entries
        if entry.chat_function_tools and decide(table, entry.model, entry.version, today).action != "refuse"
    ]
    default = table.find(*table.default)
    if default in usable:
        return default
    return max(usable, key=lambda e: add_months(e.launch, table.new_customer_months), default=None)


PARAMETER_DEFAULT = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)=(?P<default>[^}]*)\}$")


def parameter_defaults(path: Path = PARAMETERS) -> dict[str, str]:
    """``${VAR=default}`` values of main.parameters.json by variable name (what azd uses when VAR is unset)."""
    found: dict[str, str] = {}
    for parameter in json.loads(path.read_text(encoding="utf-8"))["parameters"].values():
        match = PARAMETER_DEFAULT.match(str(parameter.get("value", "")))
        if match:
            found[match["name"]] = match["default"]
    return found


def chosen(env: Mapping[str, str]) -> tuple[str, str]:
    """The model and version azd will deploy: the environment's values, else the parameters file's defaults."""
    defaults = parameter_defaults()
    model = env.get(MODEL_VARIABLE) or defaults[MODEL_VARIABLE]
    version = env.get(VERSION_VARIABLE) or defaults[VERSION_VARIABLE]
    return model, version


def azd_environment(env: Mapping[str, str]) -> dict[str, str]:
    """azd exports the environment's values to hooks; run by hand, ``azd env get-values`` fills them in."""
    values = dict(env)
    azd = shutil.which("azd")
    if "AZURE_ENV_NAME" not in values and azd:
        out = subprocess.run(  # noqa: S603 - the azd CLI resolved by shutil.which, fixed arguments
            [azd, "env", "get-values", "--output", "json"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0:
            values = {**json.loads(out.stdout), **values}
    return values


def report(table: Table, model: str, version: str, verdict: Verdict, today: dt.date) -> str:
    lines = []
    if verdict.action == "refuse":
        lines.append(f"preprovision: refusing to deploy chat model {model} {version} on {today}:")
    else:
        window = (
            f"; new subscriptions may deploy it until {verdict.new_customers_until}, this check accepts it until "
            f"{min(verdict.new_customers_until, verdict.refuse_from - dt.timedelta(days=1))}"
            if verdict.new_customers_until and verdict.refuse_from
            else ""
        )
        lines.append(f"Chat model {model} {version}{window} (infra/model-lifecycle.json, read {table.read_on}).")
    lines += [f"  - {reason}" for reason in verdict.reasons]
    if verdict.action == "refuse":
        better = alternative(table, today)
        lines.append("Nothing was created. Choose another model and version, then run `azd up` again:")
        if better is not None:
            lines.append(f"  azd env set {MODEL_VARIABLE} {better.model}")
            lines.append(f"  azd env set {VERSION_VARIABLE} {better.version}")
        else:
            lines.append(f"  azd env set {MODEL_VARIABLE} <model>; azd env set {VERSION_VARIABLE} <version>")
            lines.append(f"  (no listed model qualifies: see {table.source_url})")
        lines.append(
            f"If this subscription has deployed {model} {version} before (it keeps access until retirement): "
            f"azd env set {DEPLOYED_BEFORE_VARIABLE} true"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--today", type=dt.date.fromisoformat, help="check as of this date (YYYY-MM-DD; default today)")
    args = parser.parse_args(argv)
    values = azd_environment(os.environ if env is None else env)
    today: dt.date = args.today or dt.datetime.now(dt.UTC).date()
    table = load_table()
    model, version = chosen(values)
    deployed_before = values.get(DEPLOYED_BEFORE_VARIABLE, "").strip().lower() == "true"
    verdict = decide(table, model, version, today, deployed_before=deployed_before)
    text = report(table, model, version, verdict, today)
    print(text, file=sys.stderr if verdict.action != "ok" else sys.stdout)
    return 1 if verdict.action == "refuse" else 0


if __name__ == "__main__":
    raise SystemExit(main())
