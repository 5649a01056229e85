"""Channels: how one claimed delivery reaches its receiver.

Each channel is a small class with one ``send`` method, handed to the worker
(I/O passed in), so tests drive real local servers rather than patching.
Network channels run after the claim is committed and outside any database
transaction; the in-app channel *is* a database write, so it runs inside the
transaction that marks the delivery sent and the message appears exactly once.

Every failure is a :class:`SendError` that says whether retrying can help.
Errors name the SMTP host or the webhook *target*, never a URL (webhook URLs
often embed tokens) or a password.
"""

from __future__ import annotations

import abc
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import Connection, insert

from tenure._config_decide import Channel, DeliverySettings, SmtpSettings, WebhookTarget
from tenure.deliver._outbox import Delivery
from tenure.errors import ConfigError, ConfigProblem, SendError
from tenure.store._tables import in_app_messages

__all__ = [
    "CsmTaskChannel",
    "InAppChannel",
    "NetworkChannel",
    "SmtpChannel",
    "StoreChannel",
    "WebhookChannel",
    "build_channels",
    "sign_webhook",
    "verify_webhook_signature",
]

Clock = Callable[[], dt.datetime]


class NetworkChannel(abc.ABC):
    """A channel that hands the message to another system over the network."""

    @abc.abstractmethod
    def send(self, delivery: Delivery, payload: Mapping[str, Any]) -> str:
        """Deliver or raise :class:`SendError`; a short detail for the attempt log."""

    def close(self) -> None:  # noqa: B027 - most channels hold nothing open
        """Release connections the channel keeps between sends."""


class StoreChannel(abc.ABC):
    """A channel whose delivery is a write to the operational store.

    *connection* is the transaction that also marks the delivery sent, so the
    write and the mark commit together or not at all.
    """

    @abc.abstractmethod
    def send(self, delivery: Delivery, payload: Mapping[str, Any], connection: Connection) -> str:
        """Write the message inside *connection*'s transaction; a detail for the attempt log."""


def _field(delivery: Delivery, payload: Mapping[str, Any], key: str, kind: type) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind):
        raise SendError(
            f"delivery {delivery.id} ({delivery.channel}): payload field {key!r} should be a "
            f"{kind.__name__}, got {value!r}; the action that queued it must be fixed",
            permanent=True,
        )
    return value


def _redact(text: str, secrets: Mapping[str, str | None]) -> str:
    for secret, shown in secrets.items():
        if secret:
            text = text.replace(secret, shown or "***")
    return text


# --------------------------------------------------------------------- SMTP
class SmtpChannel(NetworkChannel):
    """Email over SMTP: one connection per message (plain, STARTTLS or TLS).

    The Message-ID is derived from the idempotency key, so a resend after a
    crash carries the same Message-ID and mail systems can drop the copy.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        clock: Clock,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._password = password
        self._ssl_context = ssl_context

    @classmethod
    def from_settings(
        cls,
        settings: SmtpSettings,
        *,
        environ: Mapping[str, str],
        clock: Clock,
        ssl_context: ssl.SSLContext | None = None,
    ) -> SmtpChannel:
        problems = _smtp_problems(settings, environ)
        if problems:
            raise ConfigError("delivery.smtp", problems)
        password = environ.get(settings.password_env) if settings.password_env else None
        return cls(settings, clock=clock, password=password, ssl_context=ssl_context)

    def message(self, delivery: Delivery, payload: Mapping[str, Any]) -> EmailMessage:
        """The email as it goes on the wire (headers included), for sending and for review."""
        message = EmailMessage()
        message["From"] = self.settings.from_address
        message["To"] = _field(delivery, payload, "to", str)
        message["Subject"] = _field(delivery, payload, "subject", str)
        message["Date"] = email.utils.format_datetime(self._clock().astimezone(dt.UTC))
        message["Message-ID"] = f"<{delivery.idempotency_key}@tenure>"
        unsubscribe = payload.get("unsubscribe_url")
        if isinstance(unsubscribe, str) and unsubscribe:
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if delivery.decision_id:
            message["X-Tenure-Decision"] = delivery.decision_id
        message.set_content(_field(delivery, payload, "text", str))
        html = payload.get("html")
        if isinstance(html, str) and html:
            message.add_alternative(html, subtype="html")
        return message

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            context = self._ssl_context or ssl.create_default_context()
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        if s.security == "starttls":
            try:
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def send(self, delivery: Delivery, payload: Mapping[str, Any]) -> str:
        message = self.message(delivery, payload)
        s = self.settings
        where = f"SMTP {s.host}:{s.port}"
        hidden = {self._password or "": "***"}
        try:
            smtp = self._connect()
        except (smtplib.SMTPException, OSError) as error:
            raise SendError(f"{where}: cannot connect ({_redact(str(error), hidden)})") from None
        try:
            if s.username:
                smtp.login(s.username, self._password or "")
            smtp.send_message(message, from_addr=s.from_address, to_addrs=[message["To"]])
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise SendError(
                f"{where} refused recipient {message['To']} ({codes[0] if codes else '?'})",
                permanent=bool(codes) and all(500 <= c < 600 for c in codes),
            ) from None
        except smtplib.SMTPAuthenticationError as error:
            source = f"the password in {s.password_env}" if s.password_env else "the password"
            raise SendError(
                f"{where} rejected the login of {s.username!r} ({error.smtp_code}); "
                f"check delivery.smtp.username and {source}"
            ) from None
        except smtplib.SMTPResponseException as error:
            reply = _redact(_text(error.smtp_error), hidden)
            raise SendError(
                f"{where} answered {error.smtp_code} {reply}",
                permanent=500 <= error.smtp_code < 600,
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise SendError(
                f"{where}: {type(error).__name__}: {_redact(str(error), hidden)}"
            ) from None
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        return f"accepted by {where} as {message['Message-ID']}"


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _smtp_problems(settings: SmtpSettings, environ: Mapping[str, str]) -> list[ConfigProblem]:
    if settings.username and not settings.password_env:
        return [
            ConfigProblem(
                "delivery.smtp.password_env",
                f"the name of the variable holding the password of username {settings.username!r}",
            )
        ]
    if settings.password_env and settings.password_env not in environ:
        return [
            ConfigProblem(
                "delivery.smtp.password_env",
                f"environment variable {settings.password_env} to be set (it holds the SMTP "
                "password)",
            )
        ]
    return []


# ------------------------------------------------------------------ webhooks
def sign_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Tenure-Signature`` header value: HMAC-SHA256 over ``"{t}.{body}"``.

    The timestamp is signed too, so a receiver can refuse replays of old requests.
    """
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_webhook_signature(
    secret: bytes, header: str, body: bytes, *, now: dt.datetime, tolerance_seconds: float = 300
) -> bool:
    """What a receiver checks: the signature matches and is not older than the tolerance."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        return False
    expected = sign_webhook(secret, timestamp, body)
    return hmac.compare_digest(expected, f"t={timestamp},v1={parts.get('v1', '')}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


class WebhookChannel(NetworkChannel):
    """JSON POSTs to named targets, signed when the target has a secret.

    ``Idempotency-Key`` carries the delivery's key, identical on every retry
    and resend, so the receiver can drop copies. 2xx is success; 408, 429, 5xx
    and network errors are retried; any other answer is permanent.
    """

    def __init__(
        self,
        targets: Mapping[str, WebhookTarget],
        *,
        clock: Clock,
        secrets: Mapping[str, bytes] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.targets = dict(targets)
        self._clock = clock
        self._secrets = dict(secrets or {})
        self._client = httpx.Client(transport=transport, follow_redirects=False)

    @classmethod
    def from_settings(
        cls,
        settings: DeliverySettings,
        *,
        environ: Mapping[str, str],
        clock: Clock,
        transport: httpx.BaseTransport | None = None,
    ) -> WebhookChannel:
        problems = _webhook_problems(settings, environ)
        if problems:
            raise ConfigError("delivery.webhooks", problems)
        secrets = {
            name: environ[target.secret_env].encode()
            for name, target in settings.webhooks.items()
            if target.secret_env
        }
        return cls(settings.webhooks, clock=clock, secrets=secrets, transport=transport)

    def post(self, target_name: str, body: Any, idempotency_key: str) -> str:
        """POST *body* as JSON to the target; a detail line, or :class:`SendError`."""
        target = self.targets.get(target_name)
        if target is None:
            raise SendError(
                f"webhook target {target_name!r} is not configured (known: "
                f"{', '.join(sorted(self.targets)) or 'none'}); add it under delivery.webhooks",
                permanent=True,
            )
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        secret = self._secrets.get(target_name)
        if secret:
            headers["Tenure-Signature"] = sign_webhook(secret, int(self._clock().timestamp()), raw)
        where = f"webhook {target_name}"
        try:
            response = self._client.post(
                target.url, content=raw, headers=headers, timeout=target.timeout_seconds
            )
        except httpx.TimeoutException:
            raise SendError(f"{where}: no answer within {target.timeout_seconds:g}s") from None
        except httpx.HTTPError as error:
            shown = _redact(str(error), {target.url: f"<{target_name}>"})
            raise SendError(f"{where}: {type(error).__name__}: {shown}") from None
        code = response.status_code
        if 200 <= code < 300:
            return f"{where} answered {code}"
        excerpt = _redact(response.text[:200], {target.url: f"<{target_name}>"}).strip()
        message = f"{where} answered {code}" + (f": {excerpt}" if excerpt else "")
        if code in (408, 429) or code >= 500:
            raise SendError(message, retry_after=_retry_after(response))
        if 300 <= code < 400:
            message += " (a redirect: set the target's url to the final address)"
        raise SendError(message, permanent=True)

    def send(self, delivery: Delivery, payload: Mapping[str, Any]) -> str:
        target = payload.get("target") or delivery.recipient
        if "body" not in payload:
            raise SendError(
                f"delivery {delivery.id} (webhook): payload has no 'body'; "
                "the action that queued it must be fixed",
                permanent=True,
            )
        return self.post(str(target), payload["body"], delivery.idempotency_key)

    def close(self) -> None:
        self._client.close()


def _webhook_problems(
    settings: DeliverySettings, environ: Mapping[str, str]
) -> list[ConfigProblem]:
    return [
        ConfigProblem(
            f"delivery.webhooks.{name}.secret_env",
            f"environment variable {target.secret_env} to be set (it holds the signing secret)",
        )
        for name, target in sorted(settings.webhooks.items())
        if target.secret_env and not environ.get(target.secret_env)
    ]


class CsmTaskChannel(NetworkChannel):
    """A task for the customer success team, posted to the webhook of the CRM or task tool."""

    def __init__(self, webhooks: WebhookChannel, target: str) -> None:
        self._webhooks = webhooks
        self.target = target

    def send(self, delivery: Delivery, payload: Mapping[str, Any]) -> str:
        if "body" not in payload:
            raise SendError(
                f"delivery {delivery.id} (csm_task): payload has no 'body'; "
                "the action that queued it must be fixed",
                permanent=True,
            )
        return self._webhooks.post(self.target, payload["body"], delivery.idempotency_key)


# -------------------------------------------------------------------- in-app
class InAppChannel(StoreChannel):
    """In-app messages: a row in ``in_app_messages`` the product reads and shows."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock

    def send(self, delivery: Delivery, payload: Mapping[str, Any], connection: Connection) -> str:
        user_id = payload.get("user_id")
        inserted = connection.execute(
            insert(in_app_messages).values(
                outbox_id=delivery.id,
                account_id=delivery.account_id,
                profile_id=delivery.profile_id,
                user_id=str(user_id) if user_id is not None else None,
                title=_field(delivery, payload, "title", str),
                body=_field(delivery, payload, "body", str),
                status="new",
                created_at=self._clock(),
            )
        )
        key = inserted.inserted_primary_key
        return f"in-app message {key[0] if key else '?'} for user {user_id}"


# -------------------------------------------------------------------- wiring
def build_channels(
    settings: DeliverySettings,
    *,
    environ: Mapping[str, str],
    clock: Clock,
    transport: httpx.BaseTransport | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, NetworkChannel | StoreChannel]:
    """Every channel the settings make possible, checking all of them before raising.

    CSM tasks need ``csm_task_webhook``; without it the channel is left out and
    the worker does not claim CSM tasks (they wait until one is configured).
    """
    problems = _smtp_problems(settings.smtp, environ) + _webhook_problems(settings, environ)
    if problems:
        raise ConfigError(
            "delivery",
            problems,
            hint="set the environment variables named above, or change the names in tenure.yaml",
        )
    webhooks = WebhookChannel.from_settings(
        settings, environ=environ, clock=clock, transport=transport
    )
    channels: dict[str, NetworkChannel | StoreChannel] = {
        Channel.EMAIL.value: SmtpChannel.from_settings(
            settings.smtp, environ=environ, clock=clock, ssl_context=ssl_context
        ),
        Channel.WEBHOOK.value: webhooks,
        Channel.IN_APP.value: InAppChannel(clock=clock),
    }
    if settings.csm_task_webhook is not None:
        channels[Channel.CSM_TASK.value] = CsmTaskChannel(webhooks, settings.csm_task_webhook)
    return channels
