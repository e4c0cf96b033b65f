"""axe-core in a Playwright page: the serious and critical accessibility violations of what it shows.

axe-core (Deque's engine, MPL-2.0) comes from the ``axe-playwright-python`` wheel of the ``dev`` extra,
which bundles ``axe.min.js``: a fresh CI machine gets it from PyPI with the rest, no npm step. It is
injected with ``page.evaluate`` (not a script tag), so a page's Content-Security-Policy cannot block it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

SEVERE = ("serious", "critical")


@cache
def axe_source() -> str:
    """The bundled axe.min.js."""
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def axe_version(page: Any) -> str:
    """The axe-core version injected into ``page``."""
    _inject(page)
    return str(page.evaluate("axe.version"))


def axe_violations(page: Any, context: str | None = None, impacts: tuple[str, ...] = SEVERE) -> list[dict[str, Any]]:
    """The violations of ``impacts`` on ``page`` (or inside the CSS selector ``context``), with their nodes."""
    _inject(page)
    result = page.evaluate(
        "([context]) => axe.run(context ? document.querySelector(context) : document, {resultTypes: ['violations']})",
        [context],
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [{"target": n["target"], "summary": n.get("failureSummary", "")} for n in v["nodes"]],
        }
        for v in result["violations"]
        if v["impact"] in impacts
    ]


def describe(violations: list[dict[str, Any]]) -> str:
    """Violations as readable lines, for an assertion message."""
    lines = []
    for v in violations:
        lines.append(f"{v['impact']}: {v['id']}: {v['help']}")
        lines += [f"    {n['target']}: {n['summary']}" for n in v["nodes"][:5]]
    return "\n".join(lines)


def _inject(page: Any) -> None:
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
