"""Recency-frequency-monetary summaries of transaction logs, the input of the CLV models."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import numpy as np

# No pandas-stubs in the toolchain yet; "unused-ignore" keeps this line valid once they come.
import pandas as pd

from tenure.errors import ModelError

__all__ = ["TimeUnit", "rfm_summary"]


class TimeUnit(StrEnum):
    """Unit of recency and T in an RFM summary (and so of the models fitted on it)."""

    DAYS = "D"
    WEEKS = "W"

    @property
    def days(self) -> int:
        """Length of the unit in calendar days."""
        return 7 if self is TimeUnit.WEEKS else 1


_COLUMNS = ["frequency", "recency", "T"]


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    datetime_col: str,
    observation_end: dt.date | dt.datetime | pd.Timestamp | str,
    monetary_col: str | None = None,
    time_unit: TimeUnit | str = TimeUnit.WEEKS,
) -> pd.DataFrame:
    """Summarise a transaction log per customer as the BG/NBD and gamma-gamma expect.

    Only transactions strictly before ``observation_end`` count. Purchases on the same
    calendar day (in the timestamps' own time zone) are merged into one, as in Fader,
    Hardie & Lee (2005). Days are the time grid: the last observed day is the day of the
    last instant before ``observation_end`` (the day before it when
    ``observation_end`` is a midnight, e.g. a plain date), so a purchase on that day
    has recency equal to T.

    Returns one row per customer, indexed by ``customer_col``, with

    * ``frequency``: purchase days after the first (repeat purchases),
    * ``recency``: time from the first purchase day to the last,
    * ``T``: time from the first purchase day to the last observed day,
    * ``monetary_value`` (only with ``monetary_col``): mean total of the repeat
      purchase days, 0 for customers without one,

    times in ``time_unit`` (weeks by default, or days). With ``observation_end``
    1997-10-01 this reproduces the CDNOW calibration summary, whose period runs to
    1997-09-30.
    """
    unit = _time_unit(time_unit)
    needed = [customer_col, datetime_col] + ([monetary_col] if monetary_col else [])
    missing = [column for column in needed if column not in transactions.columns]
    if missing:
        raise ModelError(
            f"transactions has no column {', '.join(map(repr, missing))}; "
            f"columns are {list(map(str, transactions.columns))}"
        )
    customers = transactions[customer_col]
    _require_no_missing(customers, customer_col)
    times, zone = _datetimes(transactions[datetime_col], datetime_col)
    end = _observation_end(observation_end, zone)
    observed = (times < end).to_numpy()
    frame = pd.DataFrame(
        {
            "customer": customers.to_numpy()[observed],
            "day": times[observed].dt.normalize().to_numpy(),
        }
    )
    if monetary_col:
        amounts = pd.to_numeric(transactions[monetary_col], errors="coerce")
        bad = ~np.isfinite(amounts.to_numpy(dtype=np.float64))
        if bad.any():
            row = transactions.index[int(np.flatnonzero(bad)[0])]
            raise ModelError(
                f"{monetary_col} must be a finite number on every transaction; "
                f"got {transactions.loc[row, monetary_col]!r} in row {row!r}"
            )
        frame["amount"] = amounts.to_numpy(dtype=np.float64)[observed]
    else:
        frame["amount"] = 0.0

    days = frame.groupby(["customer", "day"], sort=True)["amount"].sum().reset_index()
    first = days.groupby("customer")["day"].transform("min")
    days["repeat_amount"] = days["amount"].where(days["day"] > first)
    summary = days.groupby("customer", sort=True).agg(
        purchase_days=("day", "size"),
        first=("day", "min"),
        last=("day", "max"),
        monetary_value=("repeat_amount", "mean"),
    )
    last_observed_day = (end - pd.Timedelta(1, "ns")).normalize()
    unit_length = pd.Timedelta(days=unit.days)
    result = pd.DataFrame(
        {
            "frequency": (summary["purchase_days"] - 1).astype(np.int64),
            "recency": (summary["last"] - summary["first"]) / unit_length,
            "T": (last_observed_day - summary["first"]) / unit_length,
        },
        index=summary.index.rename(customer_col),
    )
    result["recency"] = result["recency"].astype(np.float64)
    result["T"] = result["T"].astype(np.float64)
    if monetary_col:
        result["monetary_value"] = summary["monetary_value"].fillna(0.0).astype(np.float64)
    return result


def _time_unit(value: TimeUnit | str) -> TimeUnit:
    try:
        return TimeUnit(value)
    except ValueError as error:
        raise ModelError(
            f"time_unit must be one of {[unit.value for unit in TimeUnit]}; got {value!r}"
        ) from error


def _require_no_missing(column: pd.Series[Any], name: str) -> None:
    missing = column.isna().to_numpy()
    if missing.any():
        raise ModelError(
            f"{name} is missing on {int(missing.sum())} transactions, first in row "
            f"{column.index[int(np.flatnonzero(missing)[0])]!r}; every transaction needs one"
        )


def _datetimes(column: pd.Series[Any], name: str) -> tuple[pd.Series[Any], dt.tzinfo | None]:
    """Timestamps as naive wall-clock times (a day is a calendar day where it happened).

    Also returns the time zone they were in, if any.
    """
    _require_no_missing(column, name)
    try:
        times = pd.to_datetime(column)
    except (ValueError, TypeError) as error:
        raise ModelError(f"{name} must hold dates or timestamps: {error}") from error
    zone = times.dt.tz
    if zone is not None:
        times = times.dt.tz_localize(None)
    return times, zone


def _observation_end(
    value: dt.date | dt.datetime | pd.Timestamp | str, zone: dt.tzinfo | None
) -> pd.Timestamp:
    """``value`` as a naive timestamp on the transactions' wall clock."""
    try:
        end = pd.Timestamp(value)
    except (ValueError, TypeError) as error:
        raise ModelError(f"observation_end must be a date or timestamp; got {value!r}") from error
    if pd.isna(end):
        raise ModelError(f"observation_end must be a date or timestamp; got {value!r}")
    if end.tzinfo is not None:
        if zone is None:
            raise ModelError(
                f"observation_end {value!r} has a time zone but the transaction times do "
                "not; pass a naive observation_end on the same clock"
            )
        end = end.tz_convert(zone).tz_localize(None)
    return end
