"""Reading a results table and selecting rows from it, with errors a user can act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vlscale.errors import UserError

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a results table from CSV or parquet (chosen by the file's suffix)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"table not found: {path} (give the path of a .csv or .parquet file)")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"cannot read '{path.name}': the table must be a .csv or .parquet file")
    try:
        table = reader(path)
    except Exception as error:  # the readers raise many types; all mean "not a valid table"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(f"cannot read {path}: {type(error).__name__} {first_line}") from error
    if table.empty:
        raise UserError(f"table {path} has no rows")
    return table


OPERATORS: tuple[str, ...] = ("<=", ">=", "!=", "<", ">", "=")
"""`--where` comparisons, longest first (so `<=` is not read as `<`)."""
RANGE_OPERATORS = frozenset({"<", "<=", ">", ">="})
WHERE_HELP = ("keep rows where COL=V[,V...] (one of the values), COL!=V[,V...] (none of them), "
              "or COL<X, COL<=X, COL>X, COL>=X (numeric columns; quote it in the shell, e.g. "
              "'samples_seen<=1e10'); repeatable, all must hold")


@dataclass(frozen=True)
class Condition:
    """One `--where` clause: `column op values`. `=` keeps rows equal to one of `values`
    (numbers compared with `numpy.isclose`), `!=` rows equal to none of them; the range
    operators compare a numeric column with one number exactly (as the paper's `<=` limits)."""

    column: str
    op: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.column}{self.op}{','.join(self.values)}"


def _bad(clause: str, why: str) -> UserError:
    return UserError(f"bad --where '{clause}': {why} (write COL=V1,V2, COL!=V, or COL<=X with "
                     "<, <=, >, >=, e.g. --where 'samples_seen<=1e10')")


def parse_clause(clause: str) -> Condition:
    """`"COL<=1e10"` -> Condition("COL", "<=", ("1e10",)); a malformed clause is a UserError
    that says what is wrong."""
    found = [(clause.find(op), -len(op), op) for op in OPERATORS if op in clause]
    if not found:
        raise _bad(clause, "no operator")
    position, _, op = min(found)  # the leftmost operator, the longer one at a tie
    column, rest = clause[:position].strip(), clause[position + len(op):]
    if rest.startswith(("=", "<", ">", "!")) or any(o in rest for o in ("<", ">", "!=")):
        raise _bad(clause, f"more than one operator after '{column}{op}'")
    if not column:
        raise _bad(clause, "no column name before the operator")
    values = tuple(v.strip() for v in rest.split(","))
    if not rest.strip() or not all(values):
        raise _bad(clause, f"no value after '{op}'" if not rest.strip() else "an empty value")
    if op in RANGE_OPERATORS:
        if len(values) != 1:
            raise _bad(clause, f"'{op}' compares with one number, got {len(values)} values")
        try:
            number = float(values[0])
        except ValueError:
            raise _bad(clause, f"'{op}' needs a number, got '{values[0]}'") from None
        if not np.isfinite(number):
            raise _bad(clause, f"'{op}' needs a finite number, got '{values[0]}'")
    return Condition(column, "=" if op == "=" else op, values)


def parse_where(clauses: Sequence[str]) -> list[Condition]:
    """`["COL=V1,V2", "COL<=X", ...]` -> conditions, all of which a selected row meets.

    Repeated `=` clauses of one column accumulate their values (`--where model_type=clip
    --where model_type=mammut` keeps both, as before range filters existed), as do repeated
    `!=` clauses; range clauses each add a bound (`>=` and `<=` make an interval)."""
    merged: list[Condition] = []
    for condition in map(parse_clause, clauses):
        same = next((i for i, c in enumerate(merged) if condition.op in ("=", "!=")
                     and (c.column, c.op) == (condition.column, condition.op)), None)
        if same is None:
            merged.append(condition)
        else:
            merged[same] = Condition(condition.column, condition.op,
                                     merged[same].values + condition.values)
    return merged


def as_conditions(where: Mapping[str, Sequence[str]] | Sequence[Condition | str] | None
                  ) -> list[Condition]:
    """Any accepted form of a selection as conditions: {COL: [values]} (equality, the older
    form), clause strings, or conditions."""
    if not where:
        return []
    if isinstance(where, Mapping):
        return [Condition(str(k), "=", tuple(str(v) for v in values))
                for k, values in where.items()]
    clauses = [c for c in where if isinstance(c, str)]
    if len(clauses) == len(where):
        return parse_where(clauses)
    return [c if isinstance(c, Condition) else parse_clause(c) for c in where]


def _numbers(series: pd.Series, condition: Condition) -> list[float]:
    try:
        return [float(v) for v in condition.values]
    except ValueError:
        raise UserError(f"--where {condition}: column '{condition.column}' is numeric, got "
                        f"{', '.join(condition.values)}") from None


def _matches(series: pd.Series, condition: Condition) -> pd.Series:
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if condition.op in RANGE_OPERATORS:
        if not numeric:
            raise UserError(f"--where {condition}: column '{condition.column}' is not numeric "
                            f"(e.g. {series.iloc[0]!r}); '{condition.op}' needs numbers, use = "
                            "or != for text")
        bound = float(condition.values[0])
        values = series.astype(float)
        return {"<": values < bound, "<=": values <= bound, ">": values > bound,
                ">=": values >= bound}[condition.op]
    if numeric:
        numbers = _numbers(series, condition)
        equal = series.astype(float).apply(lambda v: bool(np.isclose(numbers, v).any()))
    else:
        equal = series.astype(str).isin(condition.values)
    return equal if condition.op == "=" else ~equal


def select(df: pd.DataFrame,
           where: Mapping[str, Sequence[str]] | Sequence[Condition | str]) -> pd.DataFrame:
    """Rows that meet every condition of `where` (see `as_conditions` for its forms)."""
    keep = pd.Series(True, index=df.index)
    for condition in as_conditions(where):
        column = condition.column
        if column not in df.columns:
            raise UserError(f"--where column '{column}' is not in the table (columns: "
                            f"{', '.join(map(str, df.columns))})")
        matched = _matches(df[column], condition)
        if not matched.any():
            if condition.op in RANGE_OPERATORS:
                values = df[column].astype(float)
                raise UserError(f"no row has {condition} ('{column}' ranges from "
                                f"{values.min():g} to {values.max():g})")
            present = ", ".join(map(str, sorted(df[column].astype(str).unique())[:12]))
            what = "in" if condition.op == "=" else "outside"
            raise UserError(f"no row has {column} {what} {{{', '.join(condition.values)}}} "
                            f"(values in the table: {present})")
        keep &= matched
    selected = df[keep]
    if selected.empty:
        raise UserError("the --where conditions together select no rows: loosen them")
    return selected
