"""Pseudonyms for roles without PII: stable, distinct, keyed, and leaving nothing in clear."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.govern.pii import Pseudonymizer, is_pii_key

SECRET = b"test-pseudonym-secret"
masker = Pseudonymizer(SECRET)
PSEUDONYM = re.compile(r"^pii_[0-9a-f]{16}$")

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
names = names.filter(lambda s: s.strip() != "")


def test_a_pseudonym_is_keyed_hmac_sha256_truncated_to_64_bits() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET, b"dee@acme.com", hashlib.sha256).hexdigest()[:16]
    assert masker.pseudonym("dee@acme.com") == f"pii_{expected}"
    assert masker.pseudonym(" Dee@ACME.com ") == masker.pseudonym("dee@acme.com")
    assert Pseudonymizer(b"another secret").pseudonym("dee@acme.com") != masker.pseudonym(
        "dee@acme.com"
    )
    with pytest.raises(ValueError, match="secret is required"):
        Pseudonymizer(b"")


@given(st.emails() | names)
def test_pseudonyms_are_stable_and_shaped(value: str) -> None:
    first = masker.pseudonym(value)
    assert PSEUDONYM.match(first)
    assert Pseudonymizer(SECRET).pseudonym(value) == first


@given(st.lists(st.emails(), min_size=2, max_size=50, unique_by=lambda e: e.lower()))
def test_distinct_emails_get_distinct_pseudonyms(emails: list[str]) -> None:
    assert len({masker.pseudonym(e) for e in emails}) == len(emails)


@given(st.lists(names, min_size=2, max_size=50, unique_by=str.strip))
def test_distinct_values_get_distinct_pseudonyms(values: list[str]) -> None:
    assert len({masker.pseudonym(v) for v in values if "@" not in v}) == len(
        [v for v in values if "@" not in v]
    )


@pytest.mark.parametrize(
    ("key", "personal"),
    [
        ("email", True),
        ("Email", True),
        ("first_name", True),
        ("firstName", True),
        ("First Name", True),
        ("last-name", True),
        ("phone", True),
        ("invitee_email", True),
        ("billing_address", True),
        ("ip", True),
        ("plan", False),
        ("account_name", False),
        ("seats", False),
        ("timezone", False),
    ],
)
def test_personal_keys(key: str, personal: bool) -> None:
    assert is_pii_key(key) is personal


def test_a_contact_keeps_its_shape_and_system_ids() -> None:
    contact = {
        "profile_id": "p_1",
        "email": "Dee@Acme.com",
        "user_id": "u1",
        "name": "Dee Dee",
        "first_name": "Dee",
        "timezone": "Europe/Berlin",
        "identifiers": ["email:dee@acme.com", "user_id:u1", "profile:p_1", "phone:+4930123"],
    }
    masked = masker.document(contact)
    dee = masker.pseudonym("dee@acme.com")
    assert masked == {
        "profile_id": "p_1",
        "email": dee,
        "user_id": "u1",
        "name": masker.pseudonym("Dee Dee"),
        "first_name": masker.pseudonym("Dee"),
        "timezone": "Europe/Berlin",
        "identifiers": [
            f"email:{dee}",  # the same pseudonym as the email: analysts can join on it
            "user_id:u1",
            "profile:p_1",
            f"phone:{masker.pseudonym('+4930123')}",
        ],
    }
    assert masker.document(masked) == masked  # masking twice changes nothing


def test_user_ids_that_are_emails_and_emails_in_text_are_masked() -> None:
    document = {
        "user_id": "dee@acme.com",
        "note": "forwarded by ops@acme.com, see ticket",
        "identifiers": ["user_id:dee@acme.com"],
        "address": {"street": "1 Main St", "zip": 12345},
        "phones": ["+1 555 0100", 5550101],
        "opted_in": True,
        "seats": 12,
    }
    masked = masker.document(document)
    assert masked["user_id"] == masker.pseudonym("dee@acme.com")
    assert masked["note"] == f"forwarded by {masker.pseudonym('ops@acme.com')}, see ticket"
    assert masked["identifiers"] == [f"user_id:{masker.pseudonym('dee@acme.com')}"]
    assert masked["address"] == {
        "street": masker.pseudonym("1 Main St"),
        "zip": masker.pseudonym("12345"),
    }
    assert masked["phones"] == [masker.pseudonym("+1 555 0100"), masker.pseudonym("5550101")]
    assert (masked["opted_in"], masked["seats"]) == (True, 12)


_KEYS = st.sampled_from(["email", "name", "first_name", "lastName", "phone", "ip", "user_email"])
_OTHER = st.sampled_from(["plan", "seats", "note", "user_id", "identifiers", "tags"])


@st.composite
def documents(draw: st.DrawFn) -> tuple[Any, list[str], list[Any]]:
    """A nested document, the emails put anywhere in it, and the values under PII keys."""
    emails: list[str] = []
    secrets: list[Any] = []

    def leaf() -> Any:
        kind = draw(st.sampled_from(["email", "typed", "text", "number", "plain"]))
        if kind in ("email", "typed", "text"):
            email = draw(st.emails())
            emails.append(email)
            if kind == "typed":
                return f"{draw(st.sampled_from(['email', 'user_id']))}:{email}"
            if kind == "text":
                return f"contact {email} today"
            return email
        if kind == "number":
            return draw(st.integers(0, 10**6))
        return draw(st.sampled_from(["pro", "monthly", "u1", "p_1"]))

    def node(depth: int) -> Any:
        if depth > 2 or draw(st.booleans()):
            return leaf()
        if draw(st.booleans()):
            return [node(depth + 1) for _ in range(draw(st.integers(0, 3)))]
        result: dict[str, Any] = {}
        for _ in range(draw(st.integers(0, 4))):
            if draw(st.booleans()):
                value = draw(names | st.emails() | st.integers(0, 10**9))
                secrets.append(value)
                result[draw(_KEYS)] = value
            else:
                result[draw(_OTHER)] = node(depth + 1)
        return result

    return node(0), emails, secrets


def _leaves_under_pii_keys(document: Any) -> list[Any]:
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if is_pii_key(key):
                found.append(value)
            else:
                found.extend(_leaves_under_pii_keys(value))
    elif isinstance(document, list):
        for value in document:
            found.extend(_leaves_under_pii_keys(value))
    return found


@given(documents())
def test_no_clear_pii_is_left(case: tuple[Any, list[str], list[Any]]) -> None:
    document, emails, _secrets = case
    masked = masker.document(document)
    text = orjson.dumps(masked).decode().lower()
    assert "@" not in text  # every email, wherever it was, is a pseudonym now
    for email in emails:
        assert email.lower() not in text
    for value in _leaves_under_pii_keys(masked):
        assert isinstance(value, str)
        assert PSEUDONYM.match(value)
    assert masker.document(masked) == masked
