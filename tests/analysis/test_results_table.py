import pandas as pd
import pytest

from vlscale.analysis import load_table, select
from vlscale.analysis.table import parse_where
from vlscale.errors import UserError

TABLE = pd.DataFrame({"model_type": ["clip", "mammut", "clip"], "samples_seen": [1e6, 1e6, 3e6],
                      "value": [0.1, 0.2, 0.3]})


def test_csv_and_parquet_load_the_same(tmp_path):
    TABLE.to_csv(tmp_path / "t.csv", index=False)
    TABLE.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(load_table(tmp_path / "t.csv"),
                                  load_table(tmp_path / "t.parquet"), check_dtype=False)


@pytest.mark.parametrize("name, content, message", [
    ("t.xlsx", "x", "must be a .csv or .parquet"),
    ("t.parquet", "not parquet", "cannot read"),
    ("t.csv", "", "cannot read"),
    ("t.csv", "a,b\n", "has no rows"),
])
def test_unreadable_tables(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        load_table(tmp_path / name)


def test_where_parsing_and_selection():
    where = parse_where(["model_type=clip,mammut", "samples_seen=1e6", "model_type=siglip"])
    assert where == {"model_type": ["clip", "mammut", "siglip"], "samples_seen": ["1e6"]}
    assert select(TABLE, where).value.tolist() == [0.1, 0.2]
    with pytest.raises(UserError, match="COLUMN=VALUE"):
        parse_where(["model_type"])
    with pytest.raises(UserError, match="numeric"):
        select(TABLE, {"samples_seen": ["big"]})
    with pytest.raises(UserError, match="select no rows"):
        select(TABLE, {"model_type": ["mammut"], "samples_seen": ["3e6"]})
