"""What every CLV model shares: the maximum-likelihood fit and input validation.

A model is its parameter names and its per-customer log-likelihood; this module
supplies the rest. Parameters are estimated on the log scale (so they stay positive
without constraints) with :func:`scipy.optimize.minimize`, the objective being the
mean weighted negative log-likelihood per customer plus an optional L2 penalty on
the log-parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from tenure.errors import ModelError
from tenure.models._base import Estimator, check_fitted

__all__ = [
    "FloatArray",
    "MaximumLikelihoodModel",
    "as_customer_arrays",
    "as_scalar",
    "require_at_most",
    "require_non_negative",
    "require_positive",
    "require_whole",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]

#: Log-parameters are kept in this box so ``exp`` cannot overflow while the optimiser
#: explores; e**30 ≈ 1e13 is far beyond any parameter a real data set supports.
_LOG_PARAM_BOUNDS = (-30.0, 30.0)


class MaximumLikelihoodModel(Estimator):
    """Base of the CLV models: a likelihood, fitted by maximum likelihood on the log scale.

    A subclass names its parameters in ``_param_names`` and implements
    :meth:`_log_likelihood_terms`; its public ``fit`` validates the data and calls
    :meth:`_fit_likelihood`.

    Parameters
    ----------
    penalizer:
        L2 penalty on the log-parameters, added to the mean negative log-likelihood
        per customer. ``0`` (the default) is plain maximum likelihood; a small value
        such as ``0.001`` steadies fits on small or degenerate data.
    tol:
        Convergence tolerance handed to :func:`scipy.optimize.minimize`.
    max_iter:
        Most optimiser iterations before the fit is declared not to have converged.

    Attributes
    ----------
    params_:
        The fitted parameters by name (set by ``fit`` or :meth:`from_params`).
    log_likelihood_:
        The (unpenalised) log-likelihood of the training data at ``params_`` (set by
        ``fit``).
    """

    #: Names of the model's parameters, in the order ``_log_likelihood_terms`` takes them.
    _param_names: ClassVar[tuple[str, ...]] = ()
    _fitted_attributes = ("params_",)

    params_: dict[str, float]
    log_likelihood_: float

    def __init__(self, penalizer: float = 0.0, tol: float = 1e-10, max_iter: int = 2000) -> None:
        self.penalizer = penalizer
        self.tol = tol
        self.max_iter = max_iter

    @classmethod
    def from_params(cls, params: Mapping[str, float]) -> Self:
        """A model with known parameters (published, or stored), ready to predict.

        ``params`` must name exactly the model's parameters, each positive and finite.
        The result has ``params_`` but no ``log_likelihood_``: it was not fitted to data.
        """
        expected = set(cls._param_names)
        if set(params) != expected:
            raise ModelError(
                f"{cls.__name__} parameters must be exactly {sorted(expected)}; "
                f"got {sorted(params)}"
            )
        values = {
            name: as_scalar(f"{cls.__name__} parameter {name!r}", params[name])
            for name in cls._param_names
        }
        for name, value in values.items():
            if value <= 0:
                raise ModelError(f"{cls.__name__} parameter {name!r} must be > 0; got {value:g}")
        model = cls()
        model.params_ = values
        return model

    def _log_likelihood_terms(self, params: FloatArray, data: tuple[FloatArray, ...]) -> FloatArray:
        """Each customer's (or row's) log-likelihood at ``params`` (natural scale)."""
        raise NotImplementedError

    def _log_likelihood_gradient(
        self, params: FloatArray, data: tuple[FloatArray, ...]
    ) -> FloatArray:
        """Each row's gradient of its log-likelihood with respect to the log-parameters
        (rows × parameters). A model without one is differentiated numerically.

        Only used by models that search the default space, the log-parameters.
        An exact gradient lets L-BFGS-B follow a nearly flat ridge of the likelihood in
        a few dozen steps, where finite differences stall and the simplex fallback needs
        tens of thousands of evaluations.
        """
        raise NotImplementedError

    # The space the optimiser searches. By default the log-parameters, from 0 (all
    # parameters 1) within _LOG_PARAM_BOUNDS; a model whose likelihood has a ridge in
    # that space (sBG) searches a better-conditioned one instead.
    def _search_start(self, data: tuple[FloatArray, ...], weights: FloatArray) -> FloatArray:
        return np.zeros(len(self._param_names))

    def _search_starts(self, data: tuple[FloatArray, ...], weights: FloatArray) -> list[FloatArray]:
        """Where the optimiser starts; the best optimum found from any of them is kept."""
        return [self._search_start(data, weights)]

    def _search_bounds(self) -> list[tuple[float, float]]:
        return [_LOG_PARAM_BOUNDS] * len(self._param_names)

    def _params_at(self, point: FloatArray) -> FloatArray:
        """The parameters (natural scale) at a point of the search space."""
        result: FloatArray = np.exp(point)
        return result

    def _fitted_param_array(self) -> FloatArray:
        check_fitted(self)
        return np.array([self.params_[name] for name in self._param_names], dtype=np.float64)

    def _check_hyperparameters(self) -> None:
        name = type(self).__name__
        if not (np.isfinite(self.penalizer) and self.penalizer >= 0):
            raise ModelError(
                f"{name}.penalizer must be a finite number ≥ 0; got {self.penalizer!r}"
            )
        if not (np.isfinite(self.tol) and self.tol > 0):
            raise ModelError(f"{name}.tol must be a positive number; got {self.tol!r}")
        if not (isinstance(self.max_iter, int | np.integer) and self.max_iter >= 1):
            raise ModelError(f"{name}.max_iter must be an integer ≥ 1; got {self.max_iter!r}")

    def _fit_likelihood(self, data: tuple[FloatArray, ...], weights: FloatArray) -> Self:
        """Maximise the weighted log-likelihood of ``data``; set ``params_`` and friends."""
        self._check_hyperparameters()
        name = type(self).__name__
        total_weight = float(weights.sum())
        if total_weight <= 0:
            raise ModelError(f"{name}.fit needs at least one customer with positive weight")
        # Rows of weight 0 change nothing but can cost evaluations or hit edge cases.
        keep = weights > 0
        data, weights = _collapsed(tuple(column[keep] for column in data), weights[keep])

        def objective(point: FloatArray) -> float:
            params = self._params_at(point)
            terms = self._log_likelihood_terms(params, data)
            value = -float(weights @ terms) / total_weight
            if not np.isfinite(value):
                # The optimiser backs off from an infinite objective; NaN would derail it.
                return float(np.inf)
            log_params = np.log(params)
            return value + self.penalizer * float(log_params @ log_params)

        def with_gradient(point: FloatArray) -> tuple[float, FloatArray]:
            value = objective(point)
            params = self._params_at(point)
            rows = self._log_likelihood_gradient(params, data)
            gradient: FloatArray = -(weights @ rows) / total_weight
            if not (np.isfinite(value) and np.isfinite(gradient).all()):
                return float(np.inf), np.zeros_like(point)
            return value, gradient + 2 * self.penalizer * np.log(params)

        model = type(self)
        exact = (
            model._log_likelihood_gradient is not MaximumLikelihoodModel._log_likelihood_gradient
            and model._params_at is MaximumLikelihoodModel._params_at
        )
        bounds = self._search_bounds()
        best: tuple[float, Any, bool] | None = None
        for start in self._search_starts(data, weights):
            result = minimize(
                with_gradient if exact else objective,
                start,
                jac=exact,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": self.max_iter, "ftol": self.tol, "gtol": self.tol * 100},
            )
            if not result.success and not _stationary(objective, result.x, bounds):
                # Finite-difference gradients can stall L-BFGS-B's line search near a flat
                # optimum; the derivative-free simplex finishes the job from where it stopped.
                result = minimize(
                    objective,
                    result.x,
                    method="Nelder-Mead",
                    bounds=bounds,
                    options={"maxiter": self.max_iter * 10, "xatol": 1e-8, "fatol": self.tol},
                )
            converged = bool(result.success) or _stationary(objective, result.x, bounds)
            value = float(result.fun)
            # the lowest objective wins; a converged run over one that did not
            if best is None or (converged, -value) > (best[2], -best[0]):
                best = (value, result, converged)
        assert best is not None  # at least one start
        _, result, converged = best
        params = self._params_at(result.x)
        log_likelihood = float(weights @ self._log_likelihood_terms(params, data))
        if not (converged and np.isfinite(log_likelihood)):
            raise ModelError(
                f"{name} did not converge: {result.message}",
                hint="try a small penalizer (e.g. 0.001), or check the data's time unit",
            )
        self.params_ = dict(zip(self._param_names, map(float, params), strict=True))
        self.log_likelihood_ = log_likelihood
        return self


def _collapsed(
    data: tuple[FloatArray, ...], weights: FloatArray
) -> tuple[tuple[FloatArray, ...], FloatArray]:
    """Identical rows merged into one, their weights summed: the same likelihood in fewer
    terms. Subscription lifetimes take a few dozen values, so an sBG fit on 100k customers
    evaluates a few dozen rows instead of 100k, a hundred times per optimiser step."""
    stacked = np.column_stack(data)
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    if len(unique) == len(stacked):
        return data, weights
    summed = np.asarray(
        np.bincount(inverse.ravel(), weights=weights, minlength=len(unique)), dtype=np.float64
    )
    return tuple(np.ascontiguousarray(unique[:, i]) for i in range(unique.shape[1])), summed


def _stationary(
    objective: Callable[[FloatArray], float],
    point: FloatArray,
    bounds: list[tuple[float, float]],
    *,
    step: float = 1e-3,
    tolerance: float = 1e-4,
) -> bool:
    """Whether *point* is a (bound-constrained) optimum though the optimiser said otherwise.

    Both optimisers can stop short on a flat ridge of the likelihood: L-BFGS-B when
    its line search fails on finite-difference noise, Nelder–Mead when the simplex
    keeps sliding along the flat coordinate. The point is an optimum when no
    coordinate can lower the (per-customer) objective by more than *tolerance* per
    unit: central differences wide enough to rise above the likelihood's rounding
    noise on the ridge, where a coordinate at a bound only counts inward.
    """
    for i, (low, high) in enumerate(bounds):
        up, down = point.copy(), point.copy()
        up[i] = min(point[i] + step, high)
        down[i] = max(point[i] - step, low)
        width = up[i] - down[i]
        if width <= 0:
            continue
        slope = (objective(up) - objective(down)) / width
        if not np.isfinite(slope):
            return False
        at_low, at_high = point[i] - low < 10 * step, high - point[i] < 10 * step
        if (at_low and slope > 0) or (at_high and slope < 0):
            continue  # the objective falls only beyond the bound
        if abs(slope) > tolerance:
            return False
    return True


def as_customer_arrays(**named: npt.ArrayLike) -> list[FloatArray]:
    """Per-customer inputs as 1-D float arrays of one common length.

    Scalars are broadcast to that length; everything must be finite. Errors name the
    offending argument.
    """
    arrays: dict[str, FloatArray] = {}
    for name, values in named.items():
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ModelError(f"{name} must be numeric; got {values!r}") from error
        if array.ndim > 1:
            raise ModelError(
                f"{name} must be one value per customer (1-D); got shape {array.shape}"
            )
        bad = ~np.isfinite(array)
        if bad.any():
            position = int(np.flatnonzero(np.atleast_1d(bad))[0])
            raise ModelError(
                f"{name} must be finite; got {np.atleast_1d(array)[position]:g} "
                f"at position {position}"
            )
        arrays[name] = array
    lengths = {name: len(array) for name, array in arrays.items() if array.ndim == 1}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise ModelError(f"{', '.join(lengths)} must have the same length; got {shown}")
    length = next(iter(lengths.values()), 1)
    return [np.broadcast_to(array, (length,)).astype(np.float64) for array in arrays.values()]


def as_scalar(name: str, value: float) -> float:
    """``value`` as a finite float, or a ModelError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{name} must be a number; got {value!r}") from error
    if not np.isfinite(number):
        raise ModelError(f"{name} must be finite; got {value!r}")
    return number


def _first_bad(name: str, array: FloatArray, bad: npt.NDArray[np.bool_], expected: str) -> None:
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ModelError(
            f"{name} must be {expected}; got {array[position]:g} at position {position}"
        )


def require_non_negative(name: str, array: FloatArray) -> None:
    """Raise a ModelError naming ``name`` unless every value is ≥ 0."""
    _first_bad(name, array, array < 0, "≥ 0")


def require_positive(name: str, array: FloatArray) -> None:
    """Raise a ModelError naming ``name`` unless every value is > 0."""
    _first_bad(name, array, array <= 0, "> 0")


def require_whole(name: str, array: FloatArray) -> None:
    """Raise a ModelError naming ``name`` unless every value is a whole number."""
    _first_bad(name, array, array != np.round(array), "a whole number")


def require_at_most(name: str, array: FloatArray, bound_name: str, bound: FloatArray) -> None:
    """Raise a ModelError unless ``array`` ≤ ``bound`` element-wise, naming both."""
    bad = array > bound
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ModelError(
            f"{name} must not exceed {bound_name}; got {name}={array[position]:g} > "
            f"{bound_name}={bound[position]:g} at position {position}"
        )
