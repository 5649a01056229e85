"""The lifecycle stages, their precedence, and the funnel that links them."""

from __future__ import annotations

import enum

__all__ = ["CUSTOMER_STAGES", "FUNNEL_NEXT", "PRECEDENCE", "Stage"]


class Stage(enum.StrEnum):
    """Where an account is in its lifecycle.

    The main path is prospect → opportunity → onboarding → established → mature,
    with a renewal window before each renewal date of a long (annual) term and
    churned after the last subscription ends. ``unqualified`` and ``lost`` are the
    funnel's exits: a prospect past its window without an opportunity, and an
    account whose opportunities were all lost. Exits are not final: an opportunity
    or a purchase later moves the account on.
    """

    PROSPECT = "prospect"
    UNQUALIFIED = "unqualified"
    OPPORTUNITY = "opportunity"
    LOST = "lost"
    ONBOARDING = "onboarding"
    ESTABLISHED = "established"
    RENEWAL = "renewal"
    MATURE = "mature"
    CHURNED = "churned"


#: Stages of a paying customer.
CUSTOMER_STAGES = (Stage.ONBOARDING, Stage.ESTABLISHED, Stage.RENEWAL, Stage.MATURE)

#: Which stage holds when the rules put an account in several at once (first wins).
#: Customer stages outrank the sales stages, so a purchase ends prospecting and
#: selling; churned outranks everything until a win-back; a new customer is
#: onboarding even if a (short) term's renewal window has begun; and the renewal
#: window interrupts established or mature.
PRECEDENCE = (
    Stage.CHURNED,
    Stage.ONBOARDING,
    Stage.RENEWAL,
    Stage.ESTABLISHED,
    Stage.MATURE,
    Stage.LOST,
    Stage.OPPORTUNITY,
    Stage.UNQUALIFIED,
    Stage.PROSPECT,
)

#: For each stage, the stages that count as reaching the next step of the funnel
#: (for conversion): the next stage or one beyond it, before any later churn.
#: Mature has no next stage. Renewal converts when the account renews (goes on to
#: established or mature); churned when it is won back.
FUNNEL_NEXT: dict[Stage, tuple[Stage, ...]] = {
    Stage.PROSPECT: (Stage.OPPORTUNITY, Stage.ONBOARDING),
    Stage.UNQUALIFIED: (Stage.OPPORTUNITY, Stage.ONBOARDING),
    Stage.OPPORTUNITY: (Stage.ONBOARDING,),
    Stage.LOST: (Stage.ONBOARDING,),
    Stage.ONBOARDING: (Stage.ESTABLISHED, Stage.RENEWAL, Stage.MATURE),
    Stage.ESTABLISHED: (Stage.MATURE,),
    Stage.RENEWAL: (Stage.ESTABLISHED, Stage.MATURE),
    Stage.MATURE: (),
    Stage.CHURNED: (Stage.ONBOARDING,),
}
