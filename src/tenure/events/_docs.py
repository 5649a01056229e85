"""The event catalog rendered as Markdown: the source of docs/events.md."""

from __future__ import annotations

from tenure.events._catalog import CATALOG
from tenure.events._catalog_model import EventGroup, EventSpec, PropertySpec

__all__ = ["render_catalog_markdown"]

_INTRO = """\
# Semantic events

<!-- Generated from src/tenure/events/_catalog.py by `python -m tenure.events`. Do not edit. -->

tenure's canonical event is a [Segment](https://segment.com/docs/connections/spec/) call:
`identify`, `track`, `group`, `page`, `screen` or `alias`, with Segment's field names
(`messageId`, `userId`, `anonymousId`, `timestamp`, `context`, `properties`, `traits`, …).
Every call needs a `userId` or an `anonymousId`; timestamps are ISO 8601 and are stored in
UTC. Data sent through a Segment library, Segment's HTTP API or a Segment export is already
in this shape.

Lifecycle facts from other systems become semantic `track` events with the names below:
a Stripe subscription starting is a `Subscription Started` call, a Zendesk ticket is
`Ticket Created`, a HubSpot deal closing is `Opportunity Won`. The event is attributed to
the user (`userId`) and to their account (`context.groupId`), so models and features read
one vocabulary whatever the source.

The properties named here are validated on ingest. When a `track` event in this catalog
lacks a required property, or carries one with the wrong type, outside its range or not
among its choices, the record is quarantined with the reason, which names the property and
what was expected (for example "an integer 0–10"). Properties not listed are kept
unchecked, and events outside the catalog are ingested without property checks. Event
and property names are case-sensitive. Amounts are in major currency units (49.00, not
4900 cents).

Types: `string`; `number` (integer or decimal); `integer`; `boolean`; `array`; `object`;
`timestamp` (an ISO 8601 string).
"""

_GROUPS: dict[EventGroup, tuple[str, str]] = {
    EventGroup.B2B_SAAS: (
        "B2B SaaS",
        "Segment's [B2B SaaS spec](https://segment.com/docs/connections/spec/b2b-saas/): "
        "the user and account lifecycle. Segment requires none of these properties.",
    ),
    EventGroup.BILLING: (
        "Billing",
        "Subscriptions and payments, from the billing system (Stripe) or the product.",
    ),
    EventGroup.SUPPORT: (
        "Support",
        "Tickets and satisfaction ratings from the help desk (Zendesk).",
    ),
    EventGroup.CRM: (
        "CRM",
        "Leads and opportunities from the CRM (HubSpot, Salesforce).",
    ),
    EventGroup.SURVEY: (
        "Surveys",
        "Answers to in-product or emailed surveys.",
    ),
    EventGroup.MESSAGING: (
        "Messaging",
        "What happened to the messages tenure's actions send, reported by each delivery channel.",
    ),
    EventGroup.ECOMMERCE: (
        "E-commerce",
        "Segment's [e-commerce spec](https://segment.com/docs/connections/spec/ecommerce/v2/), "
        "for transactional businesses.",
    ),
    EventGroup.PRODUCT: (
        "Product usage",
        "How the product is used, beyond page and screen views.",
    ),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _constraint(prop: PropertySpec) -> str:
    parts: list[str] = []
    if prop.minimum is not None and prop.maximum is not None:
        parts.append(f"{prop.minimum:g}–{prop.maximum:g}")
    elif prop.minimum is not None:
        parts.append(f"≥ {prop.minimum:g}")
    elif prop.maximum is not None:
        parts.append(f"≤ {prop.maximum:g}")
    if prop.choices:
        parts.append("one of " + ", ".join(f"`{choice}`" for choice in prop.choices))
    return "; ".join(parts) or "—"


def _event_section(spec: EventSpec) -> list[str]:
    lines = [f"### {spec.name}", "", spec.description, ""]
    if spec.sources:
        lines += ["Sources: " + ", ".join(spec.sources) + ".", ""]
    if not spec.properties:
        return [*lines, "No semantic properties.", ""]
    lines += [
        "| Property | Type | Required | Constraint | Description |",
        "|---|---|---|---|---|",
    ]
    for prop in spec.properties:
        required = "yes" if prop.required else "no"
        row = (
            f"`{prop.name}`",
            prop.type.value,
            required,
            _constraint(prop),
            _cell(prop.description),
        )
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def render_catalog_markdown() -> str:
    """The whole catalog as Markdown: an introduction, then one section per group."""
    lines = [_INTRO]
    for group in EventGroup:
        title, blurb = _GROUPS[group]
        specs = [spec for spec in CATALOG.values() if spec.group is group]
        if not specs:
            continue
        lines += [f"## {title}", "", blurb, ""]
        for spec in specs:
            lines += _event_section(spec)
    return "\n".join(lines).rstrip("\n") + "\n"
