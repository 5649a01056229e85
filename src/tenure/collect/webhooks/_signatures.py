"""Provider signatures: proof that a webhook's body came from Stripe, HubSpot or Zendesk, just now.

Each provider signs the raw body (and a timestamp) with an HMAC-SHA256 keyed
by a secret it shares with the receiver; what it signs and how it encodes the
result differ:

========= ======================================= ========================================
provider  signed text                             headers (signature; timestamp)
========= ======================================= ========================================
Stripe    ``<t>.<body>``, hex                     ``Stripe-Signature: t=<s>,v1=<hex>``
HubSpot   ``<METHOD><uri><body><timestamp>``,     ``X-HubSpot-Signature-v3``;
          base64 (signature v3)                   ``X-HubSpot-Request-Timestamp`` (ms)
Zendesk   ``<timestamp><body>``, base64           ``X-Zendesk-Webhook-Signature``;
                                                  ``X-Zendesk-Webhook-Signature-Timestamp``
                                                  (ISO 8601)
========= ======================================= ========================================

A correctly signed request whose timestamp is too far from the server's
clock, before or after, is refused: that is what stops a captured request
being replayed. Every check compares in constant time against every secret
(several while one is rolled), so the time taken does not tell which came close.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import re
from collections.abc import Sequence

from tenure.collect._http import RequestError

__all__ = [
    "HUBSPOT_SIGNATURE_FIELD",
    "HUBSPOT_TIMESTAMP_FIELD",
    "SIGNATURE_WINDOW",
    "STRIPE_SIGNATURE_FIELD",
    "ZENDESK_SIGNATURE_FIELD",
    "ZENDESK_TIMESTAMP_FIELD",
    "SignatureError",
    "SignatureProblem",
    "hubspot_uri",
    "verify_hubspot_signature",
    "verify_stripe_signature",
    "verify_zendesk_signature",
]

STRIPE_SIGNATURE_FIELD = "header.Stripe-Signature"
HUBSPOT_SIGNATURE_FIELD = "header.X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP_FIELD = "header.X-HubSpot-Request-Timestamp"
ZENDESK_SIGNATURE_FIELD = "header.X-Zendesk-Webhook-Signature"
ZENDESK_TIMESTAMP_FIELD = "header.X-Zendesk-Webhook-Signature-Timestamp"

#: How far from the server's clock a signed HubSpot or Zendesk request may be: HubSpot
#: documents five minutes; Zendesk documents none, and gets the same.
SIGNATURE_WINDOW = dt.timedelta(minutes=5)


class SignatureProblem(enum.StrEnum):
    MALFORMED = "malformed_signature"  # a header missing, or not in the provider's format
    MISMATCH = "invalid_signature"  # no signature matches a secret
    STALE = "stale_signature"  # signed correctly, but too long ago (or ahead)


class SignatureError(RequestError):
    """Signature headers that do not prove the body came from the provider, just now.

    *field* names the header to blame (``header.Stripe-Signature``).
    """

    def __init__(self, problem: SignatureProblem, message: str, *, field: str) -> None:
        super().__init__(field, message)
        self.problem = problem


def _keys(secrets: Sequence[bytes] | bytes, caller: str) -> list[bytes]:
    keys = [secrets] if isinstance(secrets, bytes) else list(secrets)
    if not keys:
        raise ValueError(f"{caller} needs at least one secret")
    return keys


def _any_matches(expected: Sequence[str], sent: Sequence[str]) -> bool:
    # compare every pair, so the time taken does not tell which came close; as bytes, since
    # compare_digest refuses str with non-ASCII characters, and a header may hold any
    matched = [hmac.compare_digest(e.encode(), s.encode()) for e in expected for s in sent]
    return any(matched)


def _check_age(sent: dt.datetime, now: dt.datetime, tolerance: dt.timedelta, field: str) -> None:
    if abs(now - sent) > tolerance:
        at = sent.astimezone(dt.UTC)
        raise SignatureError(
            SignatureProblem.STALE,
            f"was signed at {at:%Y-%m-%dT%H:%M:%SZ}, more than {tolerance} from the server's "
            f"time {now.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ} (a replay, or a clock is wrong)",
            field=field,
        )


def _base64_hmac(key: bytes, signed: bytes) -> str:
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


# --------------------------------------------------------------------------- Stripe


def _stripe_error(problem: SignatureProblem, message: str) -> SignatureError:
    return SignatureError(problem, message, field=STRIPE_SIGNATURE_FIELD)


def _stripe_header(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":  # v0 and any future schemes are not trusted
            signatures.append(value.strip().lower())
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        raise _stripe_error(
            SignatureProblem.MALFORMED,
            f"has no timestamp t=<unix seconds> (got {header[:80]!r}); "
            "expected Stripe's format t=…,v1=…",
        )
    if not signatures:
        raise _stripe_error(
            SignatureProblem.MALFORMED,
            f"has no v1 signature (got {header[:80]!r}); expected Stripe's format t=…,v1=…",
        )
    return int(timestamps[0]), signatures


def verify_stripe_signature(
    payload: bytes,
    header: str,
    secrets: Sequence[bytes] | bytes,
    now: dt.datetime,
    tolerance: dt.timedelta,
) -> None:
    """Check a ``Stripe-Signature`` header against the raw body, as Stripe documents it.

    The header is ``t=<unix seconds>,v1=<hex>[,v1=<hex>…]``; the signature is
    HMAC-SHA256 of ``"<t>.<body>"`` keyed by the endpoint's signing secret
    (the whole ``whsec_…`` text). Any v1 may match any of *secrets* (Stripe
    signs with old and new secret while one is rolled). A correctly signed
    request whose timestamp is more than *tolerance* away from *now*, before
    or after, is refused: that is what stops a captured request being replayed.
    Raises :class:`SignatureError` saying which of these failed.
    """
    keys = _keys(secrets, "verify_stripe_signature")
    timestamp, signatures = _stripe_header(header)
    signed = f"{timestamp}.".encode() + payload
    expected = [hmac.new(key, signed, hashlib.sha256).hexdigest() for key in keys]
    if not _any_matches(expected, signatures):
        raise _stripe_error(
            SignatureProblem.MISMATCH,
            "no v1 signature matches the body signed with the endpoint's secret: the request "
            "is not from Stripe, or the secret is not this endpoint's signing secret",
        )
    sent = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    _check_age(sent, now, tolerance, STRIPE_SIGNATURE_FIELD)


# --------------------------------------------------------------------------- HubSpot

#: The escapes HubSpot's documentation says to decode in the URI before signing; no others.
_HUBSPOT_UNESCAPED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_HUBSPOT_ESCAPE = re.compile("|".join(_HUBSPOT_UNESCAPED), re.IGNORECASE)


def hubspot_uri(url: str) -> str:
    """*url* as HubSpot signs it: the escapes its documentation lists decoded, no others.

    ``https://h.example/v1/webhooks/hubspot?src=a%3Ab%20c`` is signed as
    ``https://h.example/v1/webhooks/hubspot?src=a:b%20c``.
    """
    return _HUBSPOT_ESCAPE.sub(lambda m: _HUBSPOT_UNESCAPED[m.group(0).upper()], url)


def verify_hubspot_signature(
    method: str,
    urls: Sequence[str],
    payload: bytes,
    signature: str,
    timestamp: str,
    secrets: Sequence[bytes] | bytes,
    now: dt.datetime,
    tolerance: dt.timedelta = SIGNATURE_WINDOW,
) -> None:
    """Check HubSpot's ``X-HubSpot-Signature-v3`` against the request, as HubSpot documents it.

    The signature is base64 of HMAC-SHA256, keyed by the app's client secret,
    of the method, the full URI HubSpot called (``https://host/path?query``,
    see :func:`hubspot_uri`), the raw body and the ``X-HubSpot-Request-Timestamp``
    header (Unix milliseconds), concatenated. *urls* are the URLs the request
    may have been sent to (as the server received it, and as the public sees
    it behind a proxy): the signature may match any, with any of *secrets*.
    A timestamp more than *tolerance* from *now* is refused, as HubSpot asks.
    Raises :class:`SignatureError` saying what failed.
    """
    keys = _keys(secrets, "verify_hubspot_signature")
    stamp = timestamp.strip()
    try:
        if not (stamp.isascii() and stamp.isdigit()):
            raise ValueError(stamp)
        sent = dt.datetime.fromtimestamp(int(stamp) / 1000, dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise SignatureError(
            SignatureProblem.MALFORMED,
            f"must be the time HubSpot signed the request, in Unix milliseconds "
            f"(got {timestamp[:40]!r})",
            field=HUBSPOT_TIMESTAMP_FIELD,
        ) from None
    uris = list(dict.fromkeys(hubspot_uri(url) for url in urls))
    expected = [
        _base64_hmac(key, method.upper().encode() + uri.encode() + payload + stamp.encode())
        for key in keys
        for uri in uris
    ]
    if not _any_matches(expected, [signature.strip()]):
        raise SignatureError(
            SignatureProblem.MISMATCH,
            "does not match the request signed with the app's client secret: the request is "
            "not from HubSpot, the secret is not this app's client secret, or HubSpot called "
            f"another URL than {' or '.join(uris)}",
            field=HUBSPOT_SIGNATURE_FIELD,
        )
    _check_age(sent, now, tolerance, HUBSPOT_TIMESTAMP_FIELD)


# --------------------------------------------------------------------------- Zendesk


def verify_zendesk_signature(
    payload: bytes,
    signature: str,
    timestamp: str,
    secrets: Sequence[bytes] | bytes,
    now: dt.datetime,
    tolerance: dt.timedelta = SIGNATURE_WINDOW,
) -> None:
    """Check Zendesk's ``X-Zendesk-Webhook-Signature`` against the raw body.

    The signature is base64 of HMAC-SHA256, keyed by the webhook's signing
    secret (the text Zendesk shows), of the
    ``X-Zendesk-Webhook-Signature-Timestamp`` header (ISO 8601, e.g.
    ``2021-03-25T05:09:27Z``) followed by the body, as Zendesk documents it.
    A timestamp more than *tolerance* from *now* is refused. Raises
    :class:`SignatureError` saying what failed.
    """
    keys = _keys(secrets, "verify_zendesk_signature")
    stamp = timestamp.strip()
    try:
        sent = dt.datetime.fromisoformat(stamp)
    except ValueError:
        raise SignatureError(
            SignatureProblem.MALFORMED,
            f"must be the time Zendesk signed the request, in ISO 8601 such as "
            f"2021-03-25T05:09:27Z (got {timestamp[:40]!r})",
            field=ZENDESK_TIMESTAMP_FIELD,
        ) from None
    sent = sent if sent.tzinfo else sent.replace(tzinfo=dt.UTC)
    expected = [_base64_hmac(key, stamp.encode() + payload) for key in keys]
    if not _any_matches(expected, [signature.strip()]):
        raise SignatureError(
            SignatureProblem.MISMATCH,
            "does not match the body signed with the webhook's signing secret: the request is "
            "not from Zendesk, or the secret is not this webhook's signing secret",
            field=ZENDESK_SIGNATURE_FIELD,
        )
    _check_age(sent, now, tolerance, ZENDESK_TIMESTAMP_FIELD)
