"""One line for people saying what steered a decision (`fints run`, `fints chat`, the demo)."""

from __future__ import annotations


def describe_steering(summary: dict) -> str:
    """One line saying what steered a decision, or why nothing did."""
    if not summary.get("applied"):
        text = f"none ({summary.get('reason', 'not applied')})"
        return text + (" [FALLBACK: memory unavailable]" if summary.get("fallback") else "")
    entries = summary.get("entries", [])
    shown = ", ".join(f"{e['id'][:8]} w={e['weight']:.2f} \"{e['request'][:40]}\"" for e in entries[:3])
    more = f" (+{len(entries) - 3} more)" if len(entries) > 3 else ""
    return f"{len(entries)} entries: {shown}{more}"
