"""The simulator: a synthetic B2B SaaS company with causal ground truth.

``simulate(out_dir, config, seed=…)`` writes what such a company's systems
would send tenure (Segment events, Stripe and Zendesk exports) and, apart
from them, the truth behind it (latent state, hazards, treatment effects, CLV).
``Simulation(out_dir, config, seed=…).step(actions)`` runs it a month at a time
with tenure's actions fed back in. See docs/simulator.md.
"""

from tenure.simulate._config import (
    AcquisitionParams,
    ActionEffectParams,
    BillingParams,
    ChurnParams,
    EventFormat,
    ExpansionParams,
    HealthParams,
    InterventionParams,
    OnboardingParams,
    SimulationConfig,
    SupportParams,
    SurveyParams,
    UsageParams,
    load_simulation_config,
    parse_simulation_config,
)
from tenure.simulate._interventions import Action, ActionType, ResponseSegment
from tenure.simulate._simulate import (
    Simulation,
    SimulationProgress,
    SimulationReport,
    StepReport,
    simulate,
)

__all__ = [
    "AcquisitionParams",
    "Action",
    "ActionEffectParams",
    "ActionType",
    "BillingParams",
    "ChurnParams",
    "EventFormat",
    "ExpansionParams",
    "HealthParams",
    "InterventionParams",
    "OnboardingParams",
    "ResponseSegment",
    "Simulation",
    "SimulationConfig",
    "SimulationProgress",
    "SimulationReport",
    "StepReport",
    "SupportParams",
    "SurveyParams",
    "UsageParams",
    "load_simulation_config",
    "parse_simulation_config",
    "simulate",
]
