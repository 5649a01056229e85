"""The semantic event catalog: the track events tenure understands, and their properties.

Names and properties follow Segment's B2B SaaS and e-commerce specs where those
exist; billing, support, CRM, survey, messaging and product-usage events are
tenure's own. The ingest validator generates its checks from these specs, so a
property's ``type``, ``required``, ``minimum``, ``maximum`` and ``choices`` are
a contract, not documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tenure.events._catalog_model import EventGroup, EventSpec, PropertySpec, PropertyType

__all__ = ["CATALOG", "catalog_event"]

_S = PropertyType.STRING
_N = PropertyType.NUMBER
_I = PropertyType.INTEGER
_A = PropertyType.ARRAY
_T = PropertyType.TIMESTAMP


def _required(
    name: str,
    type_: PropertyType,
    description: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
) -> PropertySpec:
    return PropertySpec(name, type_, description, True, minimum, maximum, choices)


def _optional(
    name: str,
    type_: PropertyType,
    description: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
) -> PropertySpec:
    return PropertySpec(name, type_, description, False, minimum, maximum, choices)


# --- B2B SaaS (Segment's spec) ---------------------------------------------------------

_SEGMENT = ("segment",)
_ACCOUNT_NAME = "The name of the account."
_TRIAL = (
    _optional("trial_start_date", _T, "When the trial starts."),
    _optional("trial_end_date", _T, "When the trial ends."),
    _optional("trial_plan_name", _S, "The name of the plan being trialed."),
)

_B2B_SAAS = (
    EventSpec(
        "Account Created",
        EventGroup.B2B_SAAS,
        "A new account (the customer organisation) was created. "
        "Send the account's id as context.groupId.",
        (_optional("account_name", _S, _ACCOUNT_NAME),),
        _SEGMENT,
    ),
    EventSpec(
        "Account Deleted",
        EventGroup.B2B_SAAS,
        "An account was deleted. Send the account's id as context.groupId.",
        (_optional("account_name", _S, _ACCOUNT_NAME),),
        _SEGMENT,
    ),
    EventSpec(
        "Signed Up",
        EventGroup.B2B_SAAS,
        "A user signed up for the service. context.groupId is the account they join.",
        (
            _optional("type", _S, "The type of signup, e.g. invited or organic."),
            _optional("first_name", _S, "The user's first name."),
            _optional("last_name", _S, "The user's last name."),
            _optional("email", _S, "The user's email address."),
            _optional("phone", _S, "The user's phone number."),
            _optional("username", _S, "The user's username."),
            _optional("title", _S, "The user's title."),
        ),
        _SEGMENT,
    ),
    EventSpec(
        "Signed In",
        EventGroup.B2B_SAAS,
        "A user signed in. context.groupId is the account they signed in to.",
        (_optional("username", _S, "The username of the user signing in."),),
        _SEGMENT,
    ),
    EventSpec(
        "Signed Out",
        EventGroup.B2B_SAAS,
        "A user signed out. context.groupId is the account they signed out of.",
        (_optional("username", _S, "The username of the user signing out."),),
        _SEGMENT,
    ),
    EventSpec(
        "Invite Sent",
        EventGroup.B2B_SAAS,
        "A user invited someone to their account.",
        (
            _optional("invitee_email", _S, "The email address of the person invited."),
            _optional("invitee_first_name", _S, "The first name of the person invited."),
            _optional("invitee_last_name", _S, "The last name of the person invited."),
            _optional("invitee_role", _S, "The permission group the invitee will have."),
        ),
        _SEGMENT,
    ),
    EventSpec(
        "Account Added User",
        EventGroup.B2B_SAAS,
        "A user was added to the account in context.groupId.",
        (_optional("role", _S, "The user's permission group in the account."),),
        _SEGMENT,
    ),
    EventSpec(
        "Account Removed User",
        EventGroup.B2B_SAAS,
        "A user was removed from the account in context.groupId.",
        (),
        _SEGMENT,
    ),
    EventSpec(
        "Trial Started",
        EventGroup.B2B_SAAS,
        "The account in context.groupId started a trial.",
        _TRIAL,
        _SEGMENT,
    ),
    EventSpec(
        "Trial Ended",
        EventGroup.B2B_SAAS,
        "The trial of the account in context.groupId ended, converted or not.",
        _TRIAL,
        _SEGMENT,
    ),
)

# --- Billing (tenure's) ----------------------------------------------------------------

_BILLING_SOURCES = ("stripe", "segment")
_CURRENCY = _optional("currency", _S, "ISO 4217 code of the amounts, e.g. USD.")
_SUBSCRIPTION_ID = _optional("subscription_id", _S, "The billing system's subscription id.")
_PLAN = _required("plan", _S, "The plan subscribed to.")
_SEATS = _optional("seats", _I, "Seats (licensed quantity) on the subscription.", minimum=0)
_INTERVAL = _optional("interval", _S, "How often the plan bills.", choices=("month", "year"))
_INVOICE_ID = _optional("invoice_id", _S, "The billing system's invoice id.")
_AMOUNT_UNITS = "in major currency units (49.00, not 4900 cents)"

_BILLING = (
    EventSpec(
        "Subscription Started",
        EventGroup.BILLING,
        "A paid subscription began. Revenue models read mrr.",
        (
            _SUBSCRIPTION_ID,
            _PLAN,
            _SEATS,
            _required(
                "mrr",
                _N,
                f"Monthly recurring revenue of the subscription, {_AMOUNT_UNITS}.",
                minimum=0,
            ),
            _CURRENCY,
            _INTERVAL,
        ),
        _BILLING_SOURCES,
    ),
    EventSpec(
        "Subscription Changed",
        EventGroup.BILLING,
        "A subscription's plan, seats or price changed (an upgrade or a downgrade).",
        (
            _SUBSCRIPTION_ID,
            _PLAN,
            _SEATS,
            _required("mrr", _N, f"MRR after the change, {_AMOUNT_UNITS}.", minimum=0),
            _optional("previous_mrr", _N, f"MRR before the change, {_AMOUNT_UNITS}.", minimum=0),
            _optional("previous_plan", _S, "The plan before the change."),
            _CURRENCY,
            _INTERVAL,
        ),
        _BILLING_SOURCES,
    ),
    EventSpec(
        "Subscription Canceled",
        EventGroup.BILLING,
        "A subscription was canceled: churn, unless the account keeps another subscription.",
        (
            _SUBSCRIPTION_ID,
            _PLAN,
            _SEATS,
            _required("mrr", _N, f"The MRR lost, {_AMOUNT_UNITS}.", minimum=0),
            _CURRENCY,
            _INTERVAL,
            _optional("reason", _S, "Why the customer canceled, as given or recorded."),
        ),
        _BILLING_SOURCES,
    ),
    EventSpec(
        "Invoice Paid",
        EventGroup.BILLING,
        "An invoice was paid.",
        (
            _required("amount", _N, f"The amount paid, {_AMOUNT_UNITS}.", minimum=0),
            _CURRENCY,
            _INVOICE_ID,
            _SUBSCRIPTION_ID,
        ),
        _BILLING_SOURCES,
    ),
    EventSpec(
        "Payment Failed",
        EventGroup.BILLING,
        "A charge failed (involuntary churn risk until it is recovered).",
        (
            _required("amount", _N, f"The amount that failed, {_AMOUNT_UNITS}.", minimum=0),
            _CURRENCY,
            _INVOICE_ID,
            _SUBSCRIPTION_ID,
            _optional("failure_reason", _S, "Why the payment failed, e.g. card_declined."),
            _optional("attempt_count", _I, "Which attempt at this charge failed.", minimum=1),
        ),
        _BILLING_SOURCES,
    ),
)

# --- Support (tenure's) ----------------------------------------------------------------

_SUPPORT_SOURCES = ("zendesk", "segment")
_TICKET = (
    _required("ticket_id", _S, "The help desk's ticket id."),
    _optional("subject", _S, "The ticket's subject line."),
    _optional("body", _S, "The ticket's text (the first comment, or the latest one)."),
    _optional(
        "priority", _S, "The ticket's priority.", choices=("low", "normal", "high", "urgent")
    ),
    _optional("channel", _S, "Where the ticket came in: email, web, chat, phone, api, …"),
    _optional("status", _S, "The help desk's status, e.g. new, open, pending, solved."),
)

_SUPPORT = (
    EventSpec(
        "Ticket Created",
        EventGroup.SUPPORT,
        "A customer opened a support ticket.",
        _TICKET,
        _SUPPORT_SOURCES,
    ),
    EventSpec(
        "Ticket Updated",
        EventGroup.SUPPORT,
        "A support ticket changed (a reply, a new priority or status).",
        _TICKET,
        _SUPPORT_SOURCES,
    ),
    EventSpec(
        "Ticket Solved",
        EventGroup.SUPPORT,
        "A support ticket was solved.",
        _TICKET,
        _SUPPORT_SOURCES,
    ),
    EventSpec(
        "CSAT Submitted",
        EventGroup.SUPPORT,
        "A customer rated their support experience. The score is on a 1–5 scale (5 best); "
        "a customer counts as satisfied at 4 or 5. Binary ratings such as Zendesk's "
        "good/bad are mapped to 5 and 1 by the collector; unrated (offered) surveys "
        "are not events.",
        (
            _required("score", _I, "Satisfaction, 1 (worst) to 5 (best).", minimum=1, maximum=5),
            _optional("ticket_id", _S, "The ticket that was rated."),
            _optional("comment", _S, "The customer's comment."),
        ),
        _SUPPORT_SOURCES,
    ),
)

# --- CRM (tenure's) --------------------------------------------------------------------

_CRM_SOURCES = ("hubspot", "salesforce")
_LEAD = (
    _optional("lead_id", _S, "The CRM's lead id."),
    _optional("lead_source", _S, "Where the lead came from, e.g. webinar, referral, paid search."),
    _optional("channel", _S, "The acquisition channel, e.g. inbound, outbound, partner."),
)
_OPPORTUNITY_ID = _required("opportunity_id", _S, "The CRM's opportunity (deal) id.")
_DEAL_AMOUNT = "The deal's value"

_CRM = (
    EventSpec(
        "Lead Created",
        EventGroup.CRM,
        "A lead entered the CRM.",
        _LEAD,
        _CRM_SOURCES,
    ),
    EventSpec(
        "Lead Qualified",
        EventGroup.CRM,
        "A lead was qualified (became a marketing- or sales-qualified lead).",
        _LEAD,
        _CRM_SOURCES,
    ),
    EventSpec(
        "Opportunity Created",
        EventGroup.CRM,
        "A sales opportunity (deal) was opened for the account.",
        (
            _OPPORTUNITY_ID,
            _optional("name", _S, "The opportunity's name."),
            _optional("amount", _N, f"{_DEAL_AMOUNT}, if known yet.", minimum=0),
            _CURRENCY,
            _optional("stage", _S, "The pipeline stage it starts in."),
        ),
        _CRM_SOURCES,
    ),
    EventSpec(
        "Opportunity Stage Changed",
        EventGroup.CRM,
        "An opportunity moved to another pipeline stage.",
        (
            _OPPORTUNITY_ID,
            _required("stage", _S, "The stage it moved to."),
            _optional("previous_stage", _S, "The stage it moved from."),
            _optional("amount", _N, f"{_DEAL_AMOUNT} at this stage.", minimum=0),
            _CURRENCY,
        ),
        _CRM_SOURCES,
    ),
    EventSpec(
        "Opportunity Won",
        EventGroup.CRM,
        "An opportunity closed won.",
        (
            _OPPORTUNITY_ID,
            _required("amount", _N, f"{_DEAL_AMOUNT} as won.", minimum=0),
            _CURRENCY,
        ),
        _CRM_SOURCES,
    ),
    EventSpec(
        "Opportunity Lost",
        EventGroup.CRM,
        "An opportunity closed lost.",
        (
            _OPPORTUNITY_ID,
            _required("amount", _N, f"{_DEAL_AMOUNT} that was lost.", minimum=0),
            _CURRENCY,
            _optional("reason", _S, "Why the deal was lost."),
        ),
        _CRM_SOURCES,
    ),
)

# --- Surveys (tenure's) ----------------------------------------------------------------

_SURVEY = (
    EventSpec(
        "NPS Submitted",
        EventGroup.SURVEY,
        "A user answered the Net Promoter Score question (how likely are you to "
        "recommend us?): 9–10 promoter, 7–8 passive, 0–6 detractor.",
        (
            _required("score", _I, "The answer, 0 to 10.", minimum=0, maximum=10),
            _optional("comment", _S, "The user's free-text comment."),
        ),
        ("segment",),
    ),
)

# --- Messaging (tenure's) --------------------------------------------------------------

_MESSAGE = (
    _required(
        "channel",
        _S,
        "The delivery channel.",
        choices=("email", "in_app", "webhook", "csm_task", "sms"),
    ),
    _optional("message_id", _S, "The channel's id for the message (not the call's messageId)."),
    _optional("decision_id", _S, "The tenure decision (next best action) that sent it."),
    _optional("campaign", _S, "The campaign or template the message belongs to."),
)
_MESSAGING_SOURCES = ("tenure",)

_MESSAGING = (
    EventSpec(
        "Message Sent",
        EventGroup.MESSAGING,
        "A message was handed to its delivery channel.",
        _MESSAGE,
        _MESSAGING_SOURCES,
    ),
    EventSpec(
        "Message Delivered",
        EventGroup.MESSAGING,
        "The channel confirmed the message reached the recipient.",
        _MESSAGE,
        _MESSAGING_SOURCES,
    ),
    EventSpec(
        "Message Opened",
        EventGroup.MESSAGING,
        "The recipient opened the message.",
        _MESSAGE,
        _MESSAGING_SOURCES,
    ),
    EventSpec(
        "Message Clicked",
        EventGroup.MESSAGING,
        "The recipient clicked a link in the message.",
        (*_MESSAGE, _optional("url", _S, "The link that was clicked.")),
        _MESSAGING_SOURCES,
    ),
    EventSpec(
        "Message Bounced",
        EventGroup.MESSAGING,
        "The message could not be delivered.",
        (
            *_MESSAGE,
            _optional(
                "bounce_type",
                _S,
                "hard: the address is permanently undeliverable; soft: a transient failure.",
                choices=("hard", "soft"),
            ),
        ),
        _MESSAGING_SOURCES,
    ),
    EventSpec(
        "Message Dismissed",
        EventGroup.MESSAGING,
        "The recipient closed an in-app message without acting on it.",
        _MESSAGE,
        _MESSAGING_SOURCES,
    ),
    EventSpec(
        "Message Unsubscribed",
        EventGroup.MESSAGING,
        "The recipient unsubscribed from the channel (or the campaign) via this message.",
        _MESSAGE,
        _MESSAGING_SOURCES,
    ),
)

# --- E-commerce (Segment's spec) -------------------------------------------------------

_PRODUCT = (
    _optional("product_id", _S, "Database id of the product."),
    _optional("sku", _S, "SKU of the product."),
    _optional("category", _S, "Product category."),
    _optional("name", _S, "Name of the product."),
    _optional("brand", _S, "Brand of the product."),
    _optional("variant", _S, "Variant of the product, e.g. Black."),
    _optional("price", _N, "Price of the product.", minimum=0),
    _optional("quantity", _N, "Quantity of the product.", minimum=0),
    _optional("coupon", _S, "Coupon code associated with the product."),
    _optional("position", _N, "Position in the product list, e.g. 3."),
    _optional("url", _S, "URL of the product page."),
    _optional("image_url", _S, "Image URL of the product."),
)
_ORDER_ID = _required("order_id", _S, "Order (transaction) id.")
_PRODUCTS = _optional("products", _A, "The products in the order (objects as in Product Viewed).")
_ORDER_AMOUNTS = (
    _optional("shipping", _N, "Shipping cost of the order.", minimum=0),
    _optional("tax", _N, "Total tax of the order.", minimum=0),
    _optional("discount", _N, "Total discount of the order.", minimum=0),
    _optional("coupon", _S, "Coupon redeemed with the order."),
    _CURRENCY,
)
_REVENUE_READ = "tenure's transactional CLV models read this"
_ECOMMERCE_SOURCES = ("segment",)

_ECOMMERCE = (
    EventSpec(
        "Product Viewed",
        EventGroup.ECOMMERCE,
        "A user viewed a product's details.",
        (
            *_PRODUCT,
            _CURRENCY,
            _optional("value", _N, "Total value of the product after quantity.", minimum=0),
        ),
        _ECOMMERCE_SOURCES,
    ),
    EventSpec(
        "Product Added",
        EventGroup.ECOMMERCE,
        "A user added a product to their cart.",
        (_optional("cart_id", _S, "The cart the product was added to."), *_PRODUCT),
        _ECOMMERCE_SOURCES,
    ),
    EventSpec(
        "Checkout Started",
        EventGroup.ECOMMERCE,
        "A user started checking out (an order is created).",
        (
            _optional("order_id", _S, "Order (transaction) id, if one exists yet."),
            _optional("affiliation", _S, "Store or affiliation the order came from."),
            _optional("value", _N, "Order value with discounts and coupons applied.", minimum=0),
            _optional(
                "revenue", _N, "Revenue of the order, excluding shipping and tax.", minimum=0
            ),
            *_ORDER_AMOUNTS,
            _PRODUCTS,
        ),
        _ECOMMERCE_SOURCES,
    ),
    EventSpec(
        "Order Completed",
        EventGroup.ECOMMERCE,
        "A user completed an order. tenure requires revenue (Segment does not): "
        "its transactional CLV models read it.",
        (
            _ORDER_ID,
            _optional("checkout_id", _S, "Checkout id."),
            _optional("affiliation", _S, "Store or affiliation the order came from."),
            _optional(
                "subtotal", _N, "Order total after discounts, before tax and shipping.", minimum=0
            ),
            _optional("total", _N, "Order total with discounts and coupons applied.", minimum=0),
            _required(
                "revenue",
                _N,
                f"Revenue of the order, excluding shipping and tax; {_REVENUE_READ}.",
                minimum=0,
            ),
            *_ORDER_AMOUNTS,
            _PRODUCTS,
        ),
        _ECOMMERCE_SOURCES,
    ),
    EventSpec(
        "Order Refunded",
        EventGroup.ECOMMERCE,
        "An order was refunded, in whole or in part. As in Segment's spec only order_id is "
        "required; tenure's transactional CLV models subtract revenue, or total when a "
        "refund carries no revenue.",
        (
            _ORDER_ID,
            _optional(
                "revenue",
                _N,
                f"Revenue refunded, as a positive amount; {_REVENUE_READ}.",
                minimum=0,
            ),
            _optional("total", _N, "Total refunded, including shipping and tax.", minimum=0),
            _CURRENCY,
            _PRODUCTS,
        ),
        _ECOMMERCE_SOURCES,
    ),
)

# --- Product usage (tenure's) ----------------------------------------------------------

_PRODUCT_USAGE = (
    EventSpec(
        "Feature Used",
        EventGroup.PRODUCT,
        "A user used a product feature. tenure's feature-adoption features read it.",
        (_required("feature", _S, "The feature's stable name, e.g. dashboards.export."),),
        ("segment",),
    ),
)


def _index(*groups: tuple[EventSpec, ...]) -> Mapping[str, EventSpec]:
    specs = [spec for group in groups for spec in group]
    index = {spec.name: spec for spec in specs}
    assert len(index) == len(specs), "the event catalog names an event twice"
    return MappingProxyType(index)


#: Every semantic event, by name, in catalog order (grouped as in the docs).
CATALOG: Mapping[str, EventSpec] = _index(
    _B2B_SAAS, _BILLING, _SUPPORT, _CRM, _SURVEY, _MESSAGING, _ECOMMERCE, _PRODUCT_USAGE
)


def catalog_event(name: str) -> EventSpec | None:
    """The spec of the semantic event ``name`` (exact, case-sensitive), or None."""
    return CATALOG.get(name)
