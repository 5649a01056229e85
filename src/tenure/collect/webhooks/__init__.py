"""Provider webhooks: Stripe's, HubSpot's and Zendesk's signature schemes, and Stripe, Zendesk
and HubSpot notifications as canonical events.

Each notification becomes zero or more Segment-format events, identified as
the file mappings of the same provider identify the same facts
(``collect/mappings/*.yaml``), so that events from an export and from a
webhook stitch into one profile and one account:

* Stripe: the customer id as a ``stripe_customer_id`` external id (people), the
  customer's email where the object carries it; amounts in major units, as the
  exports have them (Stripe's API speaks in cents).
* Zendesk: the requester's external id as userId, their email, their Zendesk id
  as a ``zendesk_user_id`` external id.
* HubSpot: a contact's record id as ``hubspot_contact_id``; a company's record id
  as the group id and as a ``hubspot_company_id`` external id (accounts).

Message ids come from what the provider sends again when it retries, so a
retry or a replay is a duplicate in the inbox. A fact an export records too
(a subscription started, an invoice paid, a ticket created …) gets the very
message id file ingest gives it (:func:`file_message_id`), so the same fact
arriving both ways is stored once. Other events are ``<provider>:<event id>:<event>``.

Nothing here knows about HTTP beyond :class:`RequestError`, whose field names
where a payload is wrong (``body.data.object.customer``) or which header
failed to prove where it came from (``header.Stripe-Signature``).

The modules, by concern: ``_common`` (events, message ids, reading payloads),
``_signatures``, ``_stripe``, ``_zendesk``, ``_hubspot``.
"""

from tenure.collect.webhooks._common import Mapped, collected, file_message_id
from tenure.collect.webhooks._hubspot import hubspot_events
from tenure.collect.webhooks._signatures import (
    HUBSPOT_SIGNATURE_FIELD,
    HUBSPOT_TIMESTAMP_FIELD,
    SIGNATURE_WINDOW,
    STRIPE_SIGNATURE_FIELD,
    ZENDESK_SIGNATURE_FIELD,
    ZENDESK_TIMESTAMP_FIELD,
    SignatureError,
    SignatureProblem,
    hubspot_uri,
    verify_hubspot_signature,
    verify_stripe_signature,
    verify_zendesk_signature,
)
from tenure.collect.webhooks._stripe import STRIPE_TYPES, stripe_events
from tenure.collect.webhooks._zendesk import zendesk_events

__all__ = [
    "HUBSPOT_SIGNATURE_FIELD",
    "HUBSPOT_TIMESTAMP_FIELD",
    "SIGNATURE_WINDOW",
    "STRIPE_SIGNATURE_FIELD",
    "STRIPE_TYPES",
    "ZENDESK_SIGNATURE_FIELD",
    "ZENDESK_TIMESTAMP_FIELD",
    "Mapped",
    "SignatureError",
    "SignatureProblem",
    "collected",
    "file_message_id",
    "hubspot_events",
    "hubspot_uri",
    "stripe_events",
    "verify_hubspot_signature",
    "verify_stripe_signature",
    "verify_zendesk_signature",
    "zendesk_events",
]
