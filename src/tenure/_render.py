"""Rich renderings of library results for the CLI (kept out of cli.py to keep it a shell)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from tenure.identity import ProfileView

__all__ = ["render_profile"]


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def render_profile(console: Console, view: ProfileView) -> None:
    name = " ".join(str(view.traits[k]) for k in ("first_name", "last_name") if view.traits.get(k))
    name = name or str(view.traits.get("name") or view.traits.get("email") or "")
    console.print(f"[bold]{view.profile_id}[/] {name}", highlight=False)
    console.print(
        f"first seen {_when(view.first_seen)} · last seen {_when(view.last_seen)} · "
        f"{view.event_count:,} events"
    )
    if view.absorbed_ids:
        console.print(f"merged from {', '.join(view.absorbed_ids)}")

    ids = Table("identifier kind", "values", title="identities", title_justify="left")
    for kind, values in view.identifiers.items():
        if values:
            ids.add_row(kind, ", ".join(values))
    console.print(ids)

    if view.traits:
        traits = Table("trait", "value", title="traits", title_justify="left")
        for key, value in sorted(view.traits.items()):
            traits.add_row(key, str(value))
        console.print(traits)

    if view.account is not None:
        account = view.account
        console.print(
            f"[bold]account[/] {account.account_id} {account.name or ''} "
            f"(group ids: {', '.join(account.group_ids) or '—'})",
            highlight=False,
        )
    if len(view.account_history) > 1:
        history = Table(
            "account",
            "name",
            "first seen",
            "last seen",
            "current",
            title="account history",
            title_justify="left",
        )
        for m in view.account_history:
            history.add_row(
                m.account_id,
                m.name or "",
                _when(m.first_seen),
                _when(m.last_seen),
                "yes" if m.is_current else "",
            )
        console.print(history)

    if view.neighbours:
        graph = Table(
            "kind",
            "id",
            "first seen",
            "last seen",
            "events",
            title="customer graph",
            title_justify="left",
        )
        for n in view.neighbours:
            graph.add_row(n.kind, n.id, _when(n.first_seen), _when(n.last_seen), str(n.event_count))
        console.print(graph)

    if view.links:
        links = Table(
            "link", "rule", "between", "status", title="identity links", title_justify="left"
        )
        for link in view.links:
            status = link.status if not link.reason else f"{link.status} ({link.reason})"
            links.add_row(link.link_id, link.rule, f"{link.left_id} ↔ {link.right_id}", status)
        console.print(links)

    if view.recent_events:
        events = Table(
            "time", "type", "event", "properties", title="recent events", title_justify="left"
        )
        for e in view.recent_events:
            events.add_row(_when(e.timestamp), e.type, e.event or "", e.summary)
        console.print(events)
