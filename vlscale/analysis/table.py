"""Reading a results table and selecting rows from it, with errors a user can act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def parse_where(clauses: Sequence[str]) -> dict[str, list[str]]:
    """`["COL=V1,V2", ...]` -> {COL: [V1, V2]}; repeated columns accumulate values."""
    selection: dict[str, list[str]] = {}
    for clause in clauses:
        column, sep, values = clause.partition("=")
        if not sep or not column.strip() or not values.strip():
            raise UserError(f"bad --where '{clause}': write COLUMN=VALUE or COLUMN=V1,V2")
        selection.setdefault(column.strip(), []).extend(v.strip() for v in values.split(","))
    return selection


def _matches(series: pd.Series, values: list[str], column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series):
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            raise UserError(f"--where {column}=...: column '{column}' is numeric, got "
                            f"{', '.join(values)}") from None
        return series.astype(float).apply(lambda v: bool(np.isclose(numbers, v).any()))
    return series.astype(str).isin(values)


def select(df: pd.DataFrame, where: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows whose column values are among the given ones, for every column in `where`."""
    keep = pd.Series(True, index=df.index)
    for column, values in where.items():
        if column not in df.columns:
            raise UserError(f"--where column '{column}' is not in the table (columns: "
                            f"{', '.join(map(str, df.columns))})")
        matched = _matches(df[column], list(values), column)
        if not matched.any():
            present = ", ".join(map(str, sorted(df[column].astype(str).unique())[:12]))
            raise UserError(f"no row has {column} in {{{', '.join(values)}}} (values in the "
                            f"table: {present})")
        keep &= matched
    selected = df[keep]
    if selected.empty:
        raise UserError("the --where conditions together select no rows: loosen them")
    return selected
