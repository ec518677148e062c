import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlscale.errors import UserError
from vlscale.platform.data import open_shards
from vlscale.platform.data.schema import ShardWriter, shard_schema, write_manifest

from helpers.shards import png_bytes


def test_writer_round_trip_rolls_shards_and_row_groups(tmp_path):
    writer = ShardWriter(tmp_path, shard_schema(with_label=True), rows_per_shard=25,
                         rows_per_group=10)
    rows = [{"key": f"{i:03d}", "jpg": png_bytes(seed=i), "txt": f"caption {i}", "label": i % 3,
             "meta": json.dumps({"i": i})} for i in range(60)]
    for row in rows:
        writer.add(row)
    written = writer.close()
    assert written == [("00000.parquet", 25), ("00001.parquet", 25), ("00002.parquet", 10)]
    assert pq.ParquetFile(tmp_path / "00000.parquet").metadata.num_row_groups == 3
    write_manifest(tmp_path, writer="test", split="train", parameters={"p": 1}, seed=3,
                   shards=written, image_size=20, verified=True, class_names=["a", "b", "c"],
                   templates=["a {}."])

    shards = open_shards(str(tmp_path))
    assert shards.num_rows == 60 and shards.has_labels and shards.verified
    assert shards.class_names == ["a", "b", "c"] and shards.templates == ["a {}."]
    assert shards.description["num_shards"] == 3 and shards.description["seed"] == 3
    assert "class_names" not in shards.description
    read = [shards.read_unit(u) for u in range(len(shards.units))]
    assert [k for r in read for k in r.keys] == [r["key"] for r in rows]
    assert [i for r in read for i in r.images] == [r["jpg"] for r in rows]
    assert [int(x) for r in read for x in r.labels] == [r["label"] for r in rows]
    assert shards.unit_first_row.tolist() == [0, 10, 20, 25, 35, 45, 50]


def test_img2dataset_aliases_and_status(tmp_path):
    table = pa.table({"key": ["a", "b", "c"], "png": [png_bytes(), None, png_bytes()],
                      "caption": ["one", "two", "three"],
                      "status": ["success", "failed_to_download", "success"],
                      "url": ["u1", "u2", "u3"]})
    pq.write_table(table, tmp_path / "00000.parquet")
    shards = open_shards(str(tmp_path))
    shard = shards.files[0]
    assert (shard.image_column, shard.caption_column) == ("png", "caption")
    assert shards.manifest == {} and not shards.verified
    raw = shards.read_unit(0)
    assert raw.status_ok.tolist() == [True, False, True]
    assert raw.captions == ["one", "two", "three"]


def test_hugging_face_image_struct(tmp_path):
    images = pa.array([{"bytes": png_bytes(), "path": "x.png"}],
                      pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": images, "text": ["hi"]}), tmp_path / "a.parquet")
    raw = open_shards(str(tmp_path)).read_unit(0)
    assert raw.images == [png_bytes()] and raw.keys == [None]


def test_open_shards_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_shards(str(tmp_path / "missing"))
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match="sub-folders: train"):
        open_shards(str(tmp_path))
    pq.write_table(shard_schema().empty_table(), tmp_path / "train" / "00000.parquet")
    with pytest.raises(UserError, match="hold no rows"):
        open_shards(str(tmp_path / "train"))
    pq.write_table(pa.table({"key": ["a"], "txt": ["x"]}), tmp_path / "train" / "00001.parquet")
    with pytest.raises(UserError, match="no shard .* has an image column"):
        open_shards(str(tmp_path / "train"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "00000.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match="not a readable parquet file"):
        open_shards(str(tmp_path / "bad"))


def test_shard_set_pickles_without_filesystem(clean_shards):
    import pickle

    shards = open_shards(str(clean_shards))
    shards.read_unit(0)
    clone = pickle.loads(pickle.dumps(shards))
    assert clone._fs is None and clone.read_unit(1).keys == shards.read_unit(1).keys


def test_fsspec_url(clean_shards):
    shards = open_shards(f"file://{clean_shards}")
    assert shards.num_rows == 1300 and len(shards.read_unit(0).keys) == 125
