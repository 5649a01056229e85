"""The one error tree of tenure.

Every error raised on purpose by tenure derives from :class:`TenureError` and
also from the built-in exception that fits it, so callers can catch either.
Messages say what was wrong, what was expected and what to do. The CLI maps
these to exit codes and the API to HTTP statuses; nothing below those edges
knows about either.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "DeliveryError",
    "IdentityError",
    "IngestError",
    "MappingError",
    "ModelError",
    "NotFittedError",
    "NotFoundError",
    "PolicyError",
    "ProjectNotFoundError",
    "ReviewError",
    "SendError",
    "StoreError",
    "TemplateError",
    "TenureError",
]


class TenureError(Exception):
    """Base class of every error tenure raises on purpose."""

    #: One line telling the user what to do next, shown by the CLI under the message.
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigProblem:
    """One problem found in a configuration file: where, and what was expected."""

    __slots__ = ("expected", "key", "value")

    def __init__(self, key: str, expected: str, value: object = None) -> None:
        self.key = key
        self.expected = expected
        self.value = value

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{self.key}: {self.expected}{shown}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.key!r}, {self.expected!r}, {self.value!r})"


class ConfigError(TenureError, ValueError):
    """A project file or setting is invalid. Lists every problem, not just the first."""

    def __init__(self, source: str, problems: list[ConfigProblem], *, hint: str | None = None):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__(f"{source}: {count}\n{lines}", hint=hint)


class ExperimentError(TenureError, ValueError):
    """An experiment, its assignment or its analysis was given something invalid.

    *problems* lists every invalid field (``arms[1].weight: …``) when the error
    comes from validating a definition.
    """

    def __init__(
        self,
        message: str,
        problems: Sequence[ConfigProblem] = (),
        *,
        hint: str | None = None,
    ) -> None:
        self.problems = list(problems)
        if self.problems:
            message += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message, hint=hint)


class ProjectNotFoundError(TenureError, FileNotFoundError):
    """No tenure.yaml where a project was expected."""

    hint = "run `tenure init` to create a project, or pass --project DIR"


class MappingError(TenureError, ValueError):
    """A column mapping is invalid or does not fit the file it was applied to."""


class IngestError(TenureError, ValueError):
    """An input cannot be ingested at all (unreadable file, unknown format).

    Bad *records* are never raised: they are quarantined with their reason.
    """


class NotFoundError(TenureError, LookupError):
    """A named thing (profile, quarantine record, link) does not exist."""


class StoreError(TenureError, RuntimeError):
    """The operational store is unreachable or its schema is not current."""


class IdentityError(TenureError, ValueError):
    """An identity operation cannot be carried out as asked."""


class ModelError(TenureError, ValueError):
    """A model cannot be fitted or applied to the data it was given."""


class NotFittedError(ModelError, AttributeError):
    """A model was asked to predict before it was fitted.

    Also an ``AttributeError`` so scikit-learn's ``check_is_fitted`` conventions hold.
    """

    hint = "call fit() first"


class PolicyError(TenureError, ValueError):
    """A policy file cannot be loaded: bad CEL, unknown variable, duplicate rule id."""

    hint = "fix the policy file; `tenure policies list` shows what loaded"


class TemplateError(TenureError, ValueError):
    """A template cannot be loaded or rendered, e.g. it uses a variable that is not there."""

    hint = "`tenure templates preview NAME --account ID` renders it against a real customer"


class ReviewError(TenureError, ValueError):
    """A review item cannot be approved or rejected in its current state."""


class DeliveryError(TenureError, ValueError):
    """An outbox operation asked for something the delivery's state does not allow."""


class SendError(TenureError, RuntimeError):
    """A channel could not hand a message over.

    *permanent* says that sending again cannot help (a 4xx answer, a refused
    recipient): the delivery goes dead at once instead of waiting out its
    retries. *retry_after* is the earliest retry the receiver asked for, in
    seconds (HTTP ``Retry-After``). Messages never carry secrets: channels name
    a webhook target, not its URL, and never show a password.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
