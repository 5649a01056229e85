"""Models: churn, survival, CLV, health, propensities, sentiment, and the registry.

Each model follows one contract (scikit-learn's: parameters in ``__init__``,
``fit`` returns ``self``, learned attributes end in ``_``) so it works on users'
own tables as well as inside the pipeline. Submodules are imported explicitly,
e.g. ``from tenure.models.clv import BetaGeo``.
"""
