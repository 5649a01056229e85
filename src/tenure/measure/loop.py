"""The closed loop: tenure decides and delivers inside the simulator, and targeting
policies are compared at equal budget against the simulator's ground truth.

``run_loop(directory, LoopSettings(...))`` (``tenure loop``) — see
:mod:`tenure.measure._loop` and docs/measure.md, "The closed loop".
"""

from __future__ import annotations

from tenure.measure._loop import (
    Comparison,
    LoopPolicy,
    LoopReport,
    LoopSettings,
    PeriodRow,
    PolicyOutcome,
    SeedSetup,
    SimulatorChannel,
    run_loop,
)

__all__ = [
    "Comparison",
    "LoopPolicy",
    "LoopReport",
    "LoopSettings",
    "PeriodRow",
    "PolicyOutcome",
    "SeedSetup",
    "SimulatorChannel",
    "run_loop",
]
