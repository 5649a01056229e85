"""Acquisition spend per month, read from a finance or ads export (``measure.spend``).

Spend is not per customer, so it is no event: it comes from a CSV file (or a glob of
several) with a header and the columns

* ``month``: ``YYYY-MM``, or an ISO date ``YYYY-MM-DD`` meaning its month;
* ``amount``: a non-negative number, in the currency of MRR;
* ``channel`` (optional): text such as ``paid`` or ``events``; CAC sums the channels.

Rows of the same month add up, within a file and across files. Any other column is
ignored. A file with a problem is never partly used: :func:`read_spend` collects every
problem of every file (its line and column, what was expected) into one
:class:`~tenure.errors.ConfigError`.
"""

from __future__ import annotations

import datetime as dt
import glob
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from tenure.errors import ConfigError, ConfigProblem

__all__ = ["MonthlySpend", "read_spend"]

_MONTH = "month"
_AMOUNT = "amount"
_CHANNEL = "channel"
_MONTH_ONLY = re.compile(r"(\d{4})-(\d{2})")
#: Rows with problems listed per file; a wrong file need not print all its rows.
_MAX_LISTED = 20
_EXPECTED_MONTH = "a month as YYYY-MM, or a date as YYYY-MM-DD"
_EXPECTED_NUMBER = "a number such as 1250.50 (no currency sign or thousands separator)"


@dataclass(frozen=True, slots=True)
class MonthlySpend:
    """Acquisition spend summed per calendar month, and the files it came from."""

    #: The first day of each month with spend → its total amount.
    by_month: Mapping[dt.date, float]
    files: tuple[Path, ...] = ()

    def amount(self, month: dt.date) -> float | None:
        """The spend of *month*'s calendar month; None when no row names that month."""
        return self.by_month.get(month.replace(day=1))


def read_spend(pattern: str | Path, *, root: Path, origin: str = "measure.spend") -> MonthlySpend:
    """Read the spend CSV *pattern* (a file or a glob), relative to *root* unless absolute.

    *origin* names the setting the pattern came from (``--spend``) in messages. Raises
    :class:`~tenure.errors.ConfigError` when no file matches, or listing every problem
    of every file when any is malformed.
    """
    path = Path(pattern).expanduser()
    resolved = path if path.is_absolute() else root / path
    files = (
        (resolved,)
        if resolved.is_file()
        else tuple(Path(p) for p in sorted(glob.glob(str(resolved))) if Path(p).is_file())
    )
    if not files:
        expected = "an existing CSV file, or a glob matching at least one"
        raise ConfigError(
            str(resolved),
            [ConfigProblem(origin, expected, str(pattern))],
            hint="measure.spend is relative to the project, --spend to the current directory",
        )
    totals: dict[dt.date, float] = {}
    problems: dict[Path, list[ConfigProblem]] = {}
    for file in files:
        found = _read_file(file, totals)
        if found:
            problems[file] = found
    if problems:
        raise _malformed(origin, problems)
    return MonthlySpend(by_month=dict(sorted(totals.items())), files=files)


def _malformed(origin: str, problems: dict[Path, list[ConfigProblem]]) -> ConfigError:
    """One error for every problem: named by the file when only one file has any."""
    hint = "fix the rows above; no spend is used until every file reads cleanly"
    if len(problems) == 1:
        [(file, found)] = problems.items()
        return ConfigError(str(file), found, hint=hint)
    listed = [
        ConfigProblem(f"{file}, {p.key}", p.expected, p.value)
        for file, found in problems.items()
        for p in found
    ]
    return ConfigError(f"{origin}: {len(problems)} spend files", listed, hint=hint)


def _read_file(file: Path, totals: dict[dt.date, float]) -> list[ConfigProblem]:
    """Add *file*'s rows to *totals*, or return its problems and add nothing."""
    data = file.read_bytes()
    # pyarrow skips empty lines and numbers the others: their line in the file
    lines = [n for n, text in enumerate(data.splitlines(), start=1) if text.strip(b"\r")]
    uneven: dict[int, int] = {}  # pyarrow's row number → how many values it had

    def skip(row: pacsv.InvalidRow) -> str:
        uneven[row.number] = row.actual_columns
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
            convert_options=pacsv.ConvertOptions(
                column_types={_MONTH: pa.string(), _AMOUNT: pa.string(), _CHANNEL: pa.string()}
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        return [ConfigProblem("line 1", f"a CSV file with a header row ({error})")]
    header = table.column_names
    missing = [
        ConfigProblem(
            f"line {lines[0]}, column {name}",
            f"a column named {name} ({what}) in the header",
            ",".join(header),
        )
        for name, what in ((_MONTH, "YYYY-MM"), (_AMOUNT, "a non-negative number"))
        if name not in header
    ]
    if missing:
        return missing
    found: list[tuple[int, ConfigProblem]] = [
        (lines[number - 1], _uneven(lines[number - 1], count, header))
        for number, count in uneven.items()
    ]
    # the table's rows: the non-empty lines after the header, less the uneven ones
    row_lines = [line for n, line in enumerate(lines[1:], start=2) if n not in uneven]
    months: dict[dt.date, float] = {}
    rows = zip(row_lines, table[_MONTH].to_pylist(), table[_AMOUNT].to_pylist(), strict=True)
    for line, month_text, amount_text in rows:
        month, amount = _month(month_text), _amount(amount_text)
        if month is None:
            problem = ConfigProblem(f"line {line}, column {_MONTH}", _EXPECTED_MONTH, month_text)
            found.append((line, problem))
        if isinstance(amount, str):
            problem = ConfigProblem(f"line {line}, column {_AMOUNT}", amount, amount_text)
            found.append((line, problem))
        elif month is not None:
            months[month] = months.get(month, 0.0) + amount
    if found:
        found.sort(key=lambda item: item[0])
        listed = [problem for _, problem in found[:_MAX_LISTED]]
        if len(found) > _MAX_LISTED:
            listed.append(ConfigProblem("…", f"and {len(found) - _MAX_LISTED} more problems"))
        return listed
    for month, amount in months.items():
        totals[month] = totals.get(month, 0.0) + amount
    return []


def _uneven(line: int, count: int, header: list[str]) -> ConfigProblem:
    expected = f"{len(header)} values, one per column of the header ({', '.join(header)})"
    return ConfigProblem(f"line {line}", expected, count)


def _month(text: str) -> dt.date | None:
    text = text.strip(" \t")
    whole = _MONTH_ONLY.fullmatch(text)
    try:
        if whole is not None:
            return dt.date(int(whole[1]), int(whole[2]), 1)
        # fromisoformat also takes 20240115 and week dates; a month column should not
        return dt.date.fromisoformat(text).replace(day=1) if len(text) == 10 else None
    except ValueError:
        return None


def _amount(text: str) -> float | str:
    """The amount, or what was expected instead."""
    try:
        value = float(text.strip(" \t"))
    except ValueError:
        return _EXPECTED_NUMBER
    if not math.isfinite(value):
        return _EXPECTED_NUMBER
    return value if value >= 0 else "a non-negative amount (spend, not refunds)"
