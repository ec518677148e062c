import pandas as pd
import pytest

from vlscale.analysis import load_table, select
from vlscale.analysis.table import Condition, parse_where
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
    # repeated equality clauses of a column accumulate values
    assert where == [Condition("model_type", "=", ("clip", "mammut", "siglip")),
                     Condition("samples_seen", "=", ("1e6",))]
    assert select(TABLE, where).value.tolist() == [0.1, 0.2]
    assert select(TABLE, {"model_type": ["clip"]}).value.tolist() == [0.1, 0.3]  # older form
    with pytest.raises(UserError, match="bad --where 'model_type': no operator"):
        parse_where(["model_type"])
    with pytest.raises(UserError, match="numeric"):
        select(TABLE, {"samples_seen": ["big"]})
    with pytest.raises(UserError, match="select no rows"):
        select(TABLE, {"model_type": ["mammut"], "samples_seen": ["3e6"]})


def test_range_and_inequality_clauses():
    assert select(TABLE, parse_where(["samples_seen<=1e6"])).value.tolist() == [0.1, 0.2]
    assert select(TABLE, parse_where(["samples_seen<3e6"])).value.tolist() == [0.1, 0.2]
    assert select(TABLE, parse_where(["samples_seen>1e6"])).value.tolist() == [0.3]
    assert select(TABLE, parse_where(["samples_seen>=1e6", "samples_seen<=1e6"])
                  ).value.tolist() == [0.1, 0.2]  # two bounds: an interval
    assert select(TABLE, parse_where(["model_type!=mammut"])).value.tolist() == [0.1, 0.3]
    with pytest.raises(UserError, match=r"outside \{mammut, clip\}"):  # != clauses accumulate
        select(TABLE, parse_where(["model_type!=mammut", "model_type!=clip"]))
    assert select(TABLE, parse_where(["samples_seen!=3e6"])).value.tolist() == [0.1, 0.2]
    assert [str(c) for c in parse_where(["samples_seen <= 1e10"])] == ["samples_seen<=1e10"]


@pytest.mark.parametrize("clause, message", [
    ("samples_seen<=big", "'<=' needs a number, got 'big'"),
    ("samples_seen<=1,2", "'<=' compares with one number, got 2 values"),
    ("samples_seen<=", "no value after '<='"),
    ("<=1e6", "no column name before the operator"),
    ("samples_seen=<1e6", "more than one operator"),
    ("samples_seen==1e6", "more than one operator"),
    ("samples_seen<=nan", "'<=' needs a finite number"),
    ("model_type=clip,,mammut", "an empty value"),
])
def test_malformed_clauses_say_what_is_wrong_and_how_to_fix_it(clause, message):
    with pytest.raises(UserError) as error:
        parse_where([clause])
    text = str(error.value)
    assert message in text and f"bad --where '{clause}'" in text
    assert "e.g. --where 'samples_seen<=1e10'" in text and "\n" not in text


def test_range_clause_on_text_or_outside_the_data():
    with pytest.raises(UserError, match="'model_type' is not numeric.*use = or != for text"):
        select(TABLE, parse_where(["model_type<=3"]))
    with pytest.raises(UserError, match=r"no row has samples_seen>1e7 \('samples_seen' ranges "
                                        r"from 1e\+06 to 3e\+06\)"):
        select(TABLE, parse_where(["samples_seen>1e7"]))
    with pytest.raises(UserError, match="no row has model_type outside"):
        select(TABLE, parse_where(["model_type!=clip,mammut"]))
