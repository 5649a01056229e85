"""The simulator: a synthetic B2B SaaS company with causal ground truth.

``simulate(out_dir, config, seed=…)`` writes what such a company's systems
would send tenure (Segment events, Stripe and Zendesk exports) and, apart
from them, the truth behind it (latent state, hazards, CLV). See
docs/simulator.md.
"""

from tenure.simulate._config import (
    AcquisitionParams,
    BillingParams,
    ChurnParams,
    EventFormat,
    ExpansionParams,
    HealthParams,
    SimulationConfig,
    SupportParams,
    SurveyParams,
    UsageParams,
    load_simulation_config,
    parse_simulation_config,
)
from tenure.simulate._simulate import SimulationProgress, SimulationReport, simulate

__all__ = [
    "AcquisitionParams",
    "BillingParams",
    "ChurnParams",
    "EventFormat",
    "ExpansionParams",
    "HealthParams",
    "SimulationConfig",
    "SimulationProgress",
    "SimulationReport",
    "SupportParams",
    "SurveyParams",
    "UsageParams",
    "load_simulation_config",
    "parse_simulation_config",
    "simulate",
]
