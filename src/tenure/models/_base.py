"""The one model contract every tenure estimator follows.

Following scikit-learn: ``__init__`` only stores its parameters, ``fit`` returns
``self``, learned attributes end in ``_``, and asking a model to predict before
fitting raises :class:`~tenure.errors.NotFittedError`. Estimators derive from
scikit-learn's ``BaseEstimator`` so ``get_params``/``set_params``/``clone`` work and
the models can sit in scikit-learn pipelines and searches.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator

from tenure.errors import NotFittedError

__all__ = ["Estimator", "check_fitted"]


class Estimator(BaseEstimator):  # type: ignore[misc]
    """Base of every tenure model: scikit-learn parameters plus a not-fitted check."""

    #: Learned attributes that exist only after ``fit``; ``check_fitted`` looks for them.
    _fitted_attributes: tuple[str, ...] = ()

    def __sklearn_is_fitted__(self) -> bool:
        return all(hasattr(self, name) for name in self._fitted_attributes)


def check_fitted(model: Estimator) -> None:
    """Raise :class:`NotFittedError` unless ``model`` has been fitted."""
    if not model.__sklearn_is_fitted__():
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet; call fit() before using it"
        )
