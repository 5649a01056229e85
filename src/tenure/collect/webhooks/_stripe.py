"""Stripe events as canonical events, identified as the ``stripe.*`` file mappings identify them.

The customer id is a ``stripe_customer_id`` external id (people), with the
customer's email where the object carries it; amounts are in major units, as
the exports have them (Stripe's API speaks in cents).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tenure.collect._http import RequestError
from tenure.collect._mapping import CastError, monthly_amount, normalize_interval
from tenure.collect.webhooks._common import (
    Event,
    Mapped,
    Who,
    count_of,
    file_message_id,
    identify,
    inner,
    iso,
    json_object,
    optional_unix_time,
    required_text,
    text_of,
    track,
    unix_time,
)

__all__ = ["STRIPE_TYPES", "stripe_events"]

_STRIPE = "stripe"
# currencies Stripe counts in whole units, and those it counts in thousandths
_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
_THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))
_NOT_STARTED = ("incomplete", "incomplete_expired")


def _major(minor: Decimal, currency: str | None) -> Decimal:
    code = (currency or "").lower()
    if code in _ZERO_DECIMAL:
        return minor
    return minor / (1000 if code in _THREE_DECIMAL else 100)


def _amount(value: Any, currency: str | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return float(_major(number, currency)) if number.is_finite() else None


def _id_of(value: Any) -> str | None:
    """An id Stripe sends as a string, or inside the object when it is expanded."""
    return text_of(value.get("id")) if isinstance(value, dict) else text_of(value)


@dataclass(frozen=True, slots=True)
class _Pricing:
    plan: str | None
    product: str | None
    seats: int | None
    mrr: float | None  # None: not computable (a tiered or metered price); the loader says so
    currency: str | None
    interval: str | None  # month or year, as the catalog knows them

    def properties(self) -> Event:
        return {
            "plan": self.plan,
            "seats": self.seats,
            "mrr": self.mrr,
            "currency": self.currency,
            "interval": self.interval,
        }


def _item_monthly(item: Mapping[str, Any], currency: str | None) -> float | None:
    price = inner(item, "price") or inner(item, "plan")
    recurring = inner(price, "recurring") or price  # a legacy plan carries interval itself
    raw = price.get("unit_amount_decimal", price.get("unit_amount", price.get("amount")))
    count = count_of(recurring.get("interval_count", 1), low=1)
    if isinstance(raw, bool) or not isinstance(raw, int | str) or count is None:
        return None
    try:
        amount = _major(Decimal(raw), text_of(price.get("currency")) or currency)
        interval = normalize_interval(str(recurring.get("interval")))
    except (InvalidOperation, CastError):
        return None
    if not amount.is_finite() or amount < 0:
        return None
    seats = count_of(item.get("quantity"))
    return monthly_amount(amount, 1 if seats is None else seats, interval, count)


def _pricing(sub: Mapping[str, Any], where: str) -> _Pricing:
    items = inner(sub, "items").get("data")
    if not items and isinstance(sub.get("plan"), dict):  # an API version before items
        items = [{"plan": sub["plan"], "quantity": sub.get("quantity")}]
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise RequestError(f"{where}.items", "must hold the subscription's items (items.data)")
    currency = text_of(sub.get("currency"))
    first = items[0]
    price = inner(first, "price") or inner(first, "plan")
    if not price:
        raise RequestError(f"{where}.items.data[0].price", "must be a JSON object")
    monthly = [_item_monthly(item, currency) for item in items]
    recurring = inner(price, "recurring") or price
    interval = recurring.get("interval") if recurring.get("interval_count", 1) == 1 else None
    product = price.get("product")
    return _Pricing(
        plan=text_of(price.get("id")),
        product=text_of(product.get("name")) if isinstance(product, dict) else text_of(product),
        seats=count_of(first.get("quantity")),
        mrr=None if None in monthly else round(sum(m for m in monthly if m is not None), 2),
        currency=currency or text_of(price.get("currency")),
        interval=interval if interval in ("month", "year") else None,
    )


@dataclass(frozen=True, slots=True)
class _StripeEvent:
    id: str
    type: str
    created: dt.datetime
    object: dict[str, Any]
    previous: dict[str, Any]
    where: str = "body.data.object"

    def who(self, customer: Any, email: Any = None) -> Who:
        customer_id = _id_of(customer)
        if customer_id is None:
            raise RequestError(f"{self.where}.customer", "is required (the Stripe customer id)")
        return Who(
            _STRIPE,
            self.type,
            email=text_of(email),
            external=((customer_id, "stripe_customer_id", "users"),),
        )

    def own_id(self, name: str) -> str:
        return f"stripe:{self.id}:{name}"

    def time(self, key: str) -> dt.datetime | None:
        return optional_unix_time(self.object, key, self.where)


def _file_id(mapping: str, key: str, name: str, at: dt.datetime) -> str:
    return file_message_id(_STRIPE, f"{mapping}:{key}:{name}", at)


def _subscription_event(
    e: _StripeEvent, name: str, at: dt.datetime, message_id: str, extra: Event | None = None
) -> Event:
    sub = e.object
    pricing = _pricing(sub, e.where)
    props: Event = {"subscription_id": required_text(sub, "id", e.where), **pricing.properties()}
    if name == "Subscription Started":
        props["product"] = pricing.product
    return track(e.who(sub.get("customer")), name, at, message_id, {**props, **(extra or {})})


def _trial_event(e: _StripeEvent, name: str) -> Event | None:
    start, end = e.time("trial_start"), e.time("trial_end")
    at = start if name == "Trial Started" else end
    if at is None:
        return None
    sub_id = required_text(e.object, "id", e.where)
    props = {
        "subscription_id": sub_id,
        "trial_plan_name": _pricing(e.object, e.where).plan,
        "trial_start_date": iso(start) if start else None,
        "trial_end_date": iso(end) if end else None,
    }
    message_id = _file_id("stripe.subscriptions", sub_id, name, at)
    return track(e.who(e.object.get("customer")), name, at, message_id, props)


def _started(e: _StripeEvent) -> Event:
    sub_id = required_text(e.object, "id", e.where)
    at = e.time("start_date") or e.time("created") or e.created
    message_id = _file_id("stripe.subscriptions", sub_id, "Subscription Started", at)
    return _subscription_event(e, "Subscription Started", at, message_id)


def _canceled(e: _StripeEvent) -> Event:
    sub_id = required_text(e.object, "id", e.where)
    at = e.time("canceled_at") or e.time("ended_at") or e.created
    ended = e.time("ended_at")
    details = inner(e.object, "cancellation_details")
    at_period_end = e.object.get("cancel_at_period_end")
    extra = {
        "cancel_at_period_end": at_period_end if isinstance(at_period_end, bool) else None,
        "ended_at": iso(ended) if ended else None,
        "reason": text_of(details.get("feedback")) or text_of(details.get("reason")),
    }
    message_id = _file_id("stripe.subscriptions", sub_id, "Subscription Canceled", at)
    return _subscription_event(e, "Subscription Canceled", at, message_id, extra)


def _subscription_created(e: _StripeEvent) -> list[Event]:
    if e.object.get("status") in _NOT_STARTED:  # no first payment yet: it has not started
        return []
    trial = _trial_event(e, "Trial Started")
    return [_started(e), *([trial] if trial else [])]


def _subscription_updated(e: _StripeEvent) -> list[Event]:
    sub, previous = e.object, e.previous
    status, before = sub.get("status"), previous.get("status")
    events: list[Event] = []
    if before in _NOT_STARTED and status not in _NOT_STARTED:
        events.append(_started(e))
        trial = _trial_event(e, "Trial Started")
        events.extend([trial] if trial else [])
    if before == "trialing" and status not in ("trialing", *_NOT_STARTED):
        trial = _trial_event(e, "Trial Ended")
        events.extend([trial] if trial else [])
    if "canceled_at" in previous and previous["canceled_at"] is None and sub.get("canceled_at"):
        events.append(_canceled(e))
    if status not in _NOT_STARTED and {"items", "plan", "quantity"} & previous.keys():
        now = _pricing(sub, e.where)
        try:
            was = _pricing({**sub, **previous}, "body.data.previous_attributes")
        except RequestError:
            was = None
        if was is None or (was.plan, was.seats, was.mrr) != (now.plan, now.seats, now.mrr):
            extra = {
                "previous_mrr": was.mrr if was else None,
                "previous_plan": was.plan if was and was.plan != now.plan else None,
            }
            name = "Subscription Changed"
            events.append(_subscription_event(e, name, e.created, e.own_id(name), extra))
    return events


def _subscription_deleted(e: _StripeEvent) -> list[Event]:
    events = [_canceled(e)]
    end, ended = e.time("trial_end"), e.time("ended_at") or e.created
    if end is not None and end <= ended:  # a trial that ran out (converted or not)
        trial = _trial_event(e, "Trial Ended")
        events.extend([trial] if trial else [])
    return events


def _invoice_common(e: _StripeEvent) -> tuple[str, Who, Event]:
    invoice = e.object
    invoice_id = required_text(invoice, "id", e.where)
    currency = text_of(invoice.get("currency"))
    # API versions from 2025-03-31 moved the subscription under parent.subscription_details
    details = inner(inner(invoice, "parent"), "subscription_details")
    subscription = invoice.get("subscription") or details.get("subscription")
    props = {
        "invoice_id": invoice_id,
        "number": text_of(invoice.get("number")),
        "currency": currency,
        "subscription_id": _id_of(subscription),
    }
    return invoice_id, e.who(invoice.get("customer"), invoice.get("customer_email")), props


def _invoice_paid(e: _StripeEvent) -> list[Event]:
    invoice_id, who, props = _invoice_common(e)
    paid = inner(e.object, "status_transitions").get("paid_at")
    at = unix_time(paid, f"{e.where}.status_transitions.paid_at") if paid is not None else e.created
    props["amount"] = _amount(e.object.get("amount_paid"), props["currency"])
    message_id = _file_id("stripe.invoices", invoice_id, "Invoice Paid", at)
    return [track(who, "Invoice Paid", at, message_id, props)]


def _invoice_failed(e: _StripeEvent) -> list[Event]:
    # one event per failed attempt (Stripe notifies each): the event id, not the invoice
    _, who, props = _invoice_common(e)
    props["amount"] = _amount(e.object.get("amount_due"), props["currency"])
    props["attempt_count"] = count_of(e.object.get("attempt_count"), low=1)
    name = "Payment Failed"
    return [track(who, name, e.created, e.own_id(name), props)]


def _customer(e: _StripeEvent) -> list[Event]:
    customer = e.object
    customer_id = required_text(customer, "id", e.where)
    created = e.time("created")
    traits = {
        "name": text_of(customer.get("name")),
        "description": text_of(customer.get("description")),
        "phone": text_of(customer.get("phone")),
        "currency": text_of(customer.get("currency")),
        "delinquent": customer.get("delinquent")
        if isinstance(customer.get("delinquent"), bool)
        else None,
        "created_at": iso(created) if created else None,
    }
    who = e.who(customer_id, customer.get("email"))
    if e.type == "customer.created":
        at = created or e.created
        return [
            identify(who, at, _file_id("stripe.customers", customer_id, "identify", at), traits)
        ]
    return [identify(who, e.created, e.own_id("identify"), traits)]


_STRIPE_TYPES: dict[str, Callable[[_StripeEvent], list[Event]]] = {
    "customer.created": _customer,
    "customer.updated": _customer,
    "customer.subscription.created": _subscription_created,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,  # the same fact: one event between them
    "invoice.payment_failed": _invoice_failed,
}

#: The Stripe event types that become canonical events; every other type is acknowledged.
STRIPE_TYPES = tuple(_STRIPE_TYPES)


def stripe_events(document: Any) -> Mapped:
    """The canonical events of one Stripe event (``{"id": "evt_…", "type", "created", "data"}``).

    ============================== ===========================================================
    Stripe event                   canonical events
    ============================== ===========================================================
    customer.created / .updated    identify (email, name, description, phone, currency,
                                   delinquent, created_at), as ``stripe.customers``
    customer.subscription.created  Subscription Started (not while ``incomplete``), Trial
                                   Started when it has a trial
    customer.subscription.updated  from ``previous_attributes``: Subscription Started
                                   (incomplete → paid), Trial Ended (trialing → anything),
                                   Subscription Canceled (a cancellation was requested),
                                   Subscription Changed (items, plan or quantity changed)
    customer.subscription.deleted  Subscription Canceled, Trial Ended if a trial ran out
    invoice.paid (or               Invoice Paid
    invoice.payment_succeeded)
    invoice.payment_failed         Payment Failed, one per failed attempt
    ============================== ===========================================================

    Every other type is acknowledged and ignored. MRR is the sum over the
    subscription's items of unit amount × quantity per month, as the export
    mapping reads it (discounts and taxes are not taken off); a tiered or
    metered price has no unit amount, so such an event carries no ``mrr`` and
    the loader quarantines it, saying so. Not in webhooks, so not mapped:
    the product's *name* (the product id is given unless the event expands it),
    a failed payment's decline reason (it is on the charge), and a re-activated
    subscription (its earlier Subscription Canceled stands, as in an export).
    """
    body = json_object(document, "body")
    event_id = required_text(body, "id", "body")
    kind = required_text(body, "type", "body")
    created = unix_time(body.get("created"), "body.created")
    handler = _STRIPE_TYPES.get(kind)
    if handler is None:
        return Mapped([], 1, 1)
    data = json_object(body.get("data"), "body.data")
    previous = data.get("previous_attributes") or {}
    stripe_event = _StripeEvent(
        event_id,
        kind,
        created,
        json_object(data.get("object"), "body.data.object"),
        json_object(previous, "body.data.previous_attributes"),
    )
    events = handler(stripe_event)
    return Mapped(events, 1, 0 if events else 1)
