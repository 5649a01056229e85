"""Point-in-time features: declarative definitions compiled to Ibis.

A :class:`FeatureDefinition` says which events, which window before the cutoff
and which aggregation; :func:`feature_frame` computes features for any set of
(entity, cutoff) pairs using only events before each cutoff (training frames),
and :func:`build_features` materializes them as of one time (scoring).
"""

from tenure.features._attribute import SENTIMENT_TABLE, attributed_events
from tenure.features._build import (
    FeatureBuild,
    FeatureSet,
    build_features,
    facts,
    feature_frame,
    feature_set,
    features_table,
    project_features,
)
from tenure.features._compile import compile_features
from tenure.features._definitions import (
    BUILTIN_FEATURES,
    Aggregation,
    FeatureDefinition,
    FeatureEntity,
    definition_hash,
    milestones_feature,
    parse_window,
)

__all__ = [
    "BUILTIN_FEATURES",
    "SENTIMENT_TABLE",
    "Aggregation",
    "FeatureBuild",
    "FeatureDefinition",
    "FeatureEntity",
    "FeatureSet",
    "attributed_events",
    "build_features",
    "compile_features",
    "definition_hash",
    "facts",
    "feature_frame",
    "feature_set",
    "features_table",
    "milestones_feature",
    "parse_window",
    "project_features",
]
