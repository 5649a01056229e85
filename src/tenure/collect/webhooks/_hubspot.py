"""HubSpot webhook notifications (v3 subscriptions) as canonical events.

Identified as the ``hubspot.*`` mappings identify them: a contact's record id
as ``hubspot_contact_id``; a company's record id as the group id and as a
``hubspot_company_id`` external id (accounts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tenure.collect.webhooks._common import (
    Event,
    Mapped,
    Who,
    group,
    identify,
    iso,
    json_object,
    required_text,
    text_of,
    time_of,
    track,
)

__all__ = ["hubspot_events"]

_HUBSPOT = "hubspot"
_LIFECYCLE = {
    "subscriber": "subscriber",
    "lead": "lead",
    "marketingqualifiedlead": "marketing_qualified_lead",
    "marketing qualified lead": "marketing_qualified_lead",
    "salesqualifiedlead": "sales_qualified_lead",
    "sales qualified lead": "sales_qualified_lead",
    "opportunity": "opportunity",
    "customer": "customer",
    "evangelist": "evangelist",
    "other": "other",
}
_CONTACT_TRAITS = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "phone": "phone",
    "jobtitle": "job_title",
    "company": "company",
    "lifecyclestage": "lifecycle_stage",
    "hs_lead_status": "lead_status",
}
_COMPANY_TRAITS = {
    "name": "name",
    "domain": "domain",
    "website": "website",
    "industry": "industry",
    "numberofemployees": "employees",
    "annualrevenue": "annual_revenue",
    "country": "country",
    "state": "state",
    "city": "city",
    "phone": "phone",
    "lifecyclestage": "lifecycle_stage",
}
_DEAL_STAGES = {
    "closedwon": "won",
    "closed won": "won",
    "closedlost": "lost",
    "closed lost": "lost",
}


def _trait_value(trait: str, value: str) -> Any:
    if trait == "lifecycle_stage":
        return _LIFECYCLE.get(value.lower(), value)
    if trait in ("employees", "annual_revenue"):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value  # as sent: the value is wrong, and the trait shows it
        if not number.is_finite():
            return value
        whole = trait == "employees" and number == number.to_integral_value()
        return int(number) if whole and abs(number) < 2**53 else float(number)
    return value


@dataclass(frozen=True, slots=True)
class _Notice:
    raw: dict[str, Any]
    where: str
    kind: str
    at: dt.datetime
    prefix: str  # of this notification's message ids

    def object_id(self) -> str:
        return required_text(self.raw, "objectId", self.where)

    def message_id(self, name: str) -> str:
        return f"{self.prefix}:{name}"


def _contact(n: _Notice, email: str | None = None) -> Who:
    external = ((n.object_id(), "hubspot_contact_id", "users"),)
    return Who(_HUBSPOT, n.kind, email=email, external=external)


def _hubspot_contact(n: _Notice) -> list[Event]:
    if n.kind == "contact.creation":
        who = _contact(n)
        return [identify(who, n.at, n.message_id("identify"), {"created_at": iso(n.at)})]
    name = text_of(n.raw.get("propertyName"))
    value = text_of(n.raw.get("propertyValue"))
    trait = _CONTACT_TRAITS.get((name or "").lower())
    if trait is None or value is None:
        return []
    who = _contact(n, email=value if trait == "email" else None)
    events = [identify(who, n.at, n.message_id("identify"), {trait: _trait_value(trait, value)})]
    stage = _LIFECYCLE.get(value.lower()) if trait == "lifecycle_stage" else None
    lead = {"lead_id": n.object_id()}
    if stage == "lead":
        events.append(track(who, "Lead Created", n.at, n.message_id("Lead Created"), lead))
    elif stage == "sales_qualified_lead":
        qualified = {**lead, "qualification": "sales_qualified_lead"}
        events.append(track(who, "Lead Qualified", n.at, n.message_id("Lead Qualified"), qualified))
    return events


def _company_who(n: _Notice, company_id: str, *more: tuple[str, str, str]) -> Who:
    external = ((company_id, "hubspot_company_id", "accounts"), *more)
    return Who(_HUBSPOT, n.kind, group_id=company_id, external=external)


def _hubspot_company(n: _Notice) -> list[Event]:
    company_id = n.object_id()
    who = _company_who(n, company_id)
    if n.kind == "company.creation":
        return [group(who, company_id, n.at, n.message_id("group"), {"created_at": iso(n.at)})]
    trait = _COMPANY_TRAITS.get((text_of(n.raw.get("propertyName")) or "").lower())
    value = text_of(n.raw.get("propertyValue"))
    if trait is None or value is None:
        return []
    traits = {trait: _trait_value(trait, value)}
    return [group(who, company_id, n.at, n.message_id("group"), traits)]


def _deal_who(n: _Notice, deal_id: str) -> Who:
    return Who(_HUBSPOT, n.kind, external=((deal_id, "hubspot_deal_id", "accounts"),))


def _hubspot_deal(n: _Notice) -> list[Event]:
    deal_id = n.object_id()
    who = _deal_who(n, deal_id)
    if n.kind == "deal.creation":
        name = "Opportunity Created"
        return [track(who, name, n.at, n.message_id(name), {"opportunity_id": deal_id})]
    value = text_of(n.raw.get("propertyValue"))
    if (text_of(n.raw.get("propertyName")) or "").lower() != "dealstage" or value is None:
        return []
    name = "Opportunity Stage Changed"
    props = {"opportunity_id": deal_id, "stage": _DEAL_STAGES.get(value.lower(), value)}
    return [track(who, name, n.at, n.message_id(name), props)]


def _hubspot_association(n: _Notice) -> list[Event]:
    kind = (text_of(n.raw.get("associationType")) or "").upper()
    if n.raw.get("associationRemoved") is True or n.raw.get("isPrimaryAssociation") is False:
        return []  # a link taken away, or to a secondary company, adds no identity
    if kind not in ("DEAL_TO_COMPANY", "CONTACT_TO_COMPANY"):
        return []
    source = required_text(n.raw, "fromObjectId", n.where)
    company = required_text(n.raw, "toObjectId", n.where)
    if kind == "DEAL_TO_COMPANY":
        # the deal's id becomes an identifier of its company's account: deal events join it
        who = _company_who(n, company, (source, "hubspot_deal_id", "accounts"))
        return [group(who, company, n.at, n.message_id("group"), {})]
    external = (
        (source, "hubspot_contact_id", "users"),
        (company, "hubspot_company_id", "accounts"),
    )
    who = Who(_HUBSPOT, n.kind, group_id=company, external=external)
    return [identify(who, n.at, n.message_id("identify"), {})]


_HUBSPOT_OBJECTS: dict[str, Callable[[_Notice], list[Event]]] = {
    "contact.creation": _hubspot_contact,
    "contact.propertyChange": _hubspot_contact,
    "company.creation": _hubspot_company,
    "company.propertyChange": _hubspot_company,
    "deal.creation": _hubspot_deal,
    "deal.propertyChange": _hubspot_deal,
    "contact.associationChange": _hubspot_association,
    "deal.associationChange": _hubspot_association,
}


def hubspot_events(document: Any) -> Mapped:
    """The canonical events of a HubSpot webhook (v3 subscriptions) request: a JSON array of
    ``{"eventId", "subscriptionId", "portalId", "occurredAt" (ms), "subscriptionType",
    "objectId", "propertyName", "propertyValue", …}``.

    ========================== ==========================================================
    subscription type          canonical events
    ========================== ==========================================================
    contact.creation           identify (created_at) of the ``hubspot_contact_id``
    contact.propertyChange     identify with the one trait the ``hubspot.contacts``
                               mapping names (email, firstname → first_name, lifecyclestage
                               → lifecycle_stage …); lifecyclestage becoming lead is also
                               Lead Created, becoming salesqualifiedlead Lead Qualified
    company.creation           group of the company (group id = record id), created_at
    company.propertyChange     group with the one trait ``hubspot.companies`` names
    deal.creation              Opportunity Created
    deal.propertyChange        dealstage: Opportunity Stage Changed (closedwon → won,
                               closedlost → lost)
    contact.associationChange  CONTACT_TO_COMPANY: identify placing the contact in the
                               company's account, as the export's primary company does
    deal.associationChange     DEAL_TO_COMPANY: group linking the deal's id to the company
    ========================== ==========================================================

    Other types and properties are acknowledged and ignored. HubSpot's
    notifications carry one property and no associations, so: a contact's
    events are tied to its record id (and to an email once ``email`` changes),
    not to an email and a company as the export's are; a deal is known by a
    ``hubspot_deal_id`` account identifier until a deal.associationChange ties
    it to its company (subscribe to it); and a deal reaching closed won or
    lost is an Opportunity Stage Changed, not Opportunity Won or Lost, whose
    required amount the notification does not carry (the deals export has
    it). Lead Created is not sent for contacts that skip the lead stage, and
    leads carry no lead source.
    """
    batch = isinstance(document, list)
    items = document if batch else [document]
    events: list[Event] = []
    ignored = 0
    for i, raw in enumerate(items):
        where = f"body[{i}]" if batch else "body"
        notice = json_object(raw, where)
        kind = required_text(notice, "subscriptionType", where)
        event_id = required_text(notice, "eventId", where)
        at = time_of(notice.get("occurredAt"), f"{where}.occurredAt")
        handler = _HUBSPOT_OBJECTS.get(kind)
        if handler is None:
            ignored += 1
            continue
        portal = text_of(notice.get("portalId")) or "-"
        # HubSpot says an eventId alone is not unique: the portal, subscription and object with it
        target = text_of(notice.get("objectId")) or text_of(notice.get("fromObjectId")) or "-"
        prefix = f"hubspot:{portal}:{event_id}:{kind}:{target}"
        mapped = handler(_Notice(notice, where, kind, at, prefix))
        ignored += 0 if mapped else 1
        events.extend(mapped)
    return Mapped(events, len(items), ignored)
