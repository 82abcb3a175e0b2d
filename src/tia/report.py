"""Machine-readable reports: `tia select --json` and `tia run --json-report FILE`.

Both documents carry a ``schema`` number.  Within one schema number fields are
only ever added; removing or changing a field bumps it (docs/json.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tia import __version__
from tia.errors import UsageError

if TYPE_CHECKING:
    from tia.project import Plan

SELECT_SCHEMA = 1
RUN_SCHEMA = 1

NEW_REASON = {"rule": "new", "detail": "not in the map"}


def reasons_of(plan: Plan, nodeid: str) -> list[dict[str, str]]:
    """Why `nodeid` runs under `plan`, as JSON objects."""
    if plan.mode == "all":
        return [{"rule": "all", "detail": plan.why_all or ""}]
    reasons = plan.selection.reasons.get(nodeid)
    return [r.to_json() for r in reasons] if reasons else [dict(NEW_REASON)]


def selection_rows(plan: Plan, new: list[str]) -> list[str]:
    """The node ids a selection lists, last failures first, then `new` ones."""
    if plan.mode == "all":
        return sorted(plan.known)
    failed = set(plan.selection.failed)
    return sorted(plan.selection.reasons, key=lambda n: (n not in failed, n)) + list(new)


def _head(plan: Plan, schema: int) -> dict[str, Any]:
    return {
        "schema": schema,
        "tia": __version__,
        "mode": plan.mode,
        "since": plan.base.ref if plan.base else None,
        "merge_base": plan.base.commit if plan.base else None,
        "mapped": len(plan.known),
    }


def selection_doc(plan: Plan, nodeids: list[str]) -> dict[str, Any]:
    """The `tia select --json` document."""
    return {
        **_head(plan, SELECT_SCHEMA),
        "tests": [{"nodeid": n, "reasons": reasons_of(plan, n)} for n in nodeids],
    }


def run_doc(
    plan: Plan,
    payload: dict[str, Any] | None,
    selected: list[str] | None,
    exitstatus: int,
    shard: tuple[int, int] | None,
) -> dict[str, Any]:
    """The `tia run --json-report` document: what ran, why, and how it ended.

    `selected` is what the plugin kept after collection (None when pytest never
    got that far); a test that was selected but did not run (``-x``, Ctrl-C) has
    a null outcome and duration."""
    outcomes = (payload or {}).get("outcomes", {})
    nodeids = selected if selected is not None else selection_rows(plan, [])
    tests = []
    for nodeid in nodeids:
        result = outcomes.get(nodeid) or {}
        tests.append(
            {
                "nodeid": nodeid,
                "outcome": result.get("outcome"),
                "duration": result.get("duration"),
                "reasons": reasons_of(plan, nodeid),
            }
        )
    return {
        **_head(plan, RUN_SCHEMA),
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "exitstatus": exitstatus,
        "selected": len(nodeids),
        "deselected": len(plan.known - set(nodeids)),
        "tests": tests,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write `doc` to `path` whole or not at all (a reader never sees half a report)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from None
