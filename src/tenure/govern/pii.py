"""Pseudonymized PII for the roles that must not see personal data in clear.

Analyst and read-only keys (:func:`tenure.govern.keys.sees_pii`) get every
personal value replaced by a *pseudonym*: ``pii_`` and the first 16 hex digits
of HMAC-SHA256 over the value under a project secret. The same value always
gives the same pseudonym, so an analyst can still count people and join
tables on them; without the secret a pseudonym cannot be reversed, nor can a
guessed address be checked against it. Emails are trimmed and lower-cased
first (``Dee@Acme.com`` is the same person as ``dee@acme.com``). 64 bits make
a collision between two distinct values of a customer base of millions about
as likely as a one-in-a-million event (``n² / 2⁶⁵``).

What counts as personal (see :data:`PII_KEYS`):

* a value under a personal key, anywhere in a document, whatever its type
  (strings and numbers become pseudonyms; lists and objects are masked leaf
  by leaf). Keys are compared without case, ``_``, ``-`` or spaces, so
  ``first_name``, ``firstName`` and ``First Name`` are one key; keys that
  *end* in one of :data:`PII_KEY_SUFFIXES` (``invitee_email``,
  ``billing_address``) count too;
* an email address inside any string (a ``user_id`` that is an email, an
  identifier ``email:dee@acme.com``, a note that quotes one);
* the value of a typed identifier whose type is personal (``email:…``,
  ``phone:…``); ``user_id:u1`` and ``profile:p_…`` are the system's own ids
  and stay, unless the id is itself an email.

Names and phone numbers in free text other than under these keys are not
detected: free text is not where tenure keeps them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tenure.govern.secrets import project_secret

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = [
    "PII_IDENTIFIER_TYPES",
    "PII_KEYS",
    "PII_KEY_SUFFIXES",
    "Pseudonymizer",
    "is_pii_key",
    "pseudonym_secret",
]


def pseudonym_secret(project: Project) -> bytes:
    """The key of the project's pseudonyms (``serve.pseudonym_secret_env``, else its key file):
    the API masks with it, and erasure writes the same pseudonyms."""
    return project_secret(project.root, "pseudonym", project.config.serve.pseudonym_secret_env)


#: Keys (normalized: lower case, no ``_``, ``-`` or spaces) whose values are personal.
PII_KEYS = frozenset(
    {
        # contact
        "email",
        "emails",
        "emailaddress",
        "phone",
        "phones",
        "phonenumber",
        "mobile",
        "mobilephone",
        "fax",
        # names
        "name",
        "firstname",
        "lastname",
        "fullname",
        "middlename",
        "givenname",
        "familyname",
        "surname",
        "nickname",
        "username",
        "displayname",
        # where a person is
        "address",
        "addresses",
        "street",
        "streetaddress",
        "postalcode",
        "zip",
        "zipcode",
        "ip",
        "ipaddress",
        # who a person is
        "birthday",
        "birthdate",
        "dateofbirth",
        "dob",
        "age",
        "gender",
        "ssn",
        "nationalid",
        "passport",
        "taxid",
        "avatar",
        "photo",
    }
)

#: Key endings that make a key personal too: ``invitee_email``, ``billing_address``.
PII_KEY_SUFFIXES = (
    "email",
    "emailaddress",
    "phone",
    "phonenumber",
    "firstname",
    "lastname",
    "fullname",
    "address",
)

#: Identifier types whose value is personal (``email:dee@acme.com`` → ``email:pii_…``).
PII_IDENTIFIER_TYPES = frozenset({"email", "phone"})

_NOT_KEY = re.compile(r"[\s_\-]+")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_TYPED = re.compile(r"^([a-z_]+):(\S+)$")  # one typed identifier; text around it is prose
_PSEUDONYM = re.compile(r"^pii_[0-9a-f]{16}$")


@functools.lru_cache(maxsize=4096)  # documents repeat their keys: once per key, not per use
def is_pii_key(key: str) -> bool:
    """Whether values under *key* are personal (see :data:`PII_KEYS`)."""
    normal = _NOT_KEY.sub("", key).lower()
    return normal in PII_KEYS or normal.endswith(PII_KEY_SUFFIXES)


class Pseudonymizer:
    """Masks personal values with keyed, stable pseudonyms."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a pseudonym secret is required")
        self._secret = secret

    def pseudonym(self, value: str) -> str:
        """``pii_`` + 16 hex digits of HMAC-SHA256(secret, value); emails are normalized."""
        text = value.strip()
        if "@" in text:
            text = text.lower()
        digest = hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()
        return f"pii_{digest[:16]}"

    def text(self, value: str) -> str:
        """*value* with a personal identifier's value and every email in it pseudonymized."""
        if "@" not in value and ":" not in value:
            return value  # neither an email nor a typed identifier: most text of a document
        if _PSEUDONYM.match(value):
            return value
        typed = _TYPED.match(value)
        if typed is not None and typed.group(1) in PII_IDENTIFIER_TYPES:
            kind, rest = typed.groups()
            return f"{kind}:{rest if _PSEUDONYM.match(rest) else self.pseudonym(rest)}"
        return _EMAIL.sub(lambda m: self.pseudonym(m.group(0)), value)

    def identifier(self, typed: str) -> str:
        """A typed identifier as a role without PII sees it (``email:pii_…``, ``user_id:u1``)."""
        return self.text(typed)

    def value(self, value: Any) -> Any:
        """A value found under a personal key: every leaf becomes a pseudonym."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return value if _PSEUDONYM.match(value) else self.pseudonym(value)
        if isinstance(value, int | float):
            return self.pseudonym(str(value))
        if isinstance(value, Mapping):
            return {str(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return self.pseudonym(str(value))

    def document(self, document: Any) -> Any:
        """*document* (JSON-like) with values under personal keys and emails pseudonymized."""
        if isinstance(document, str):
            return self.text(document)
        if isinstance(document, Mapping):
            return {
                str(k): self.value(v) if is_pii_key(str(k)) else self.document(v)
                for k, v in document.items()
            }
        if isinstance(document, list | tuple):
            return [self.document(v) for v in document]
        return document
