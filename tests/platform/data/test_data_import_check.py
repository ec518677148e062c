"""`data import` (img2dataset parquet, webdataset tar) and `data check`."""

import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlscale.errors import UserError
from vlscale.platform.data import open_shards
from vlscale.platform.data.check import check_shards
from vlscale.platform.data.importer import import_shards

from helpers.shards import add_tar_member, png_bytes, read_shards


def _img2dataset_shard(path, offset=0):
    good = png_bytes(seed=offset)
    pq.write_table(pa.table({
        "key": [f"{offset + i:09d}" for i in range(6)],
        "jpg": [good, good, None, b"\xff\xd8broken", good, good],
        "txt": ["a cat", "a dog", "a cow", "a hen", "  ", "a fox"],
        "status": ["success", "failed_to_download", "success", "success", "success", "success"],
        "url": [f"http://x/{i}" for i in range(6)],
        "width": [20] * 6,
    }), path, row_group_size=4)


def test_import_img2dataset_parquet_drops_and_counts(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    _img2dataset_shard(source / "00000.parquet")
    _img2dataset_shard(source / "00001.parquet", offset=6)
    manifest = import_shards(source, tmp_path / "out")
    assert manifest["num_rows"] == 4 and manifest["verified"]
    assert manifest["skipped"] == {"status": 2, "no_image": 2, "bad_image": 2, "no_caption": 2}
    shards = open_shards(str(tmp_path / "out"))
    assert shards.verified and shards.num_rows == 4
    table = read_shards(tmp_path / "out")
    assert table.column("key").to_pylist() == ["000000000", "000000005", "000000006",
                                               "000000011"]
    assert table.column("txt").to_pylist() == ["a cat", "a fox", "a cat", "a fox"]
    assert json.loads(table.column("meta")[0].as_py()) == {"url": "http://x/0", "width": 20}
    unverified = import_shards(source, tmp_path / "fast", verify=False)
    assert unverified["num_rows"] == 6 and not unverified["verified"]


def test_import_webdataset_tar(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    with tarfile.open(source / "000.tar", "w") as archive:
        add_tar_member(archive, "s/0001.jpg", png_bytes(seed=1))
        add_tar_member(archive, "s/0001.txt", b"first caption")
        add_tar_member(archive, "s/0001.json", json.dumps({"url": "u1"}).encode())
        add_tar_member(archive, "s/0002.png", png_bytes(seed=2))
        add_tar_member(archive, "s/0002.json", json.dumps({"caption": "from json"}).encode())
        add_tar_member(archive, "s/0003.txt", b"no image")
        add_tar_member(archive, "s/0004.webp", b"garbage")
        add_tar_member(archive, "s/0004.txt", b"bad image")
    manifest = import_shards(source, tmp_path / "out")
    assert manifest["skipped"] == {"no_image": 1, "bad_image": 1}
    table = read_shards(tmp_path / "out")
    assert table.column("key").to_pylist() == ["s/0001", "s/0002"]
    assert table.column("txt").to_pylist() == ["first caption", "from json"]
    assert table.column("jpg")[1].as_py() == png_bytes(seed=2)


def test_import_errors(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        import_shards(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .parquet or .tar"):
        import_shards(tmp_path / "empty", tmp_path / "out")
    source = tmp_path / "bad"
    source.mkdir()
    pq.write_table(pa.table({"jpg": [b"x"], "txt": ["a"]}), source / "0.parquet")
    with pytest.raises(UserError, match="no usable rows"):
        import_shards(source, tmp_path / "out2")


def test_check_counts_every_kind_of_bad_row(dirty_shards):
    from helpers.shards import bad_row_count

    report = check_shards(str(dirty_shards))
    assert report.rows == report.checked == 905 and report.shards == 6
    assert report.usable == 900 - bad_row_count(900)
    assert report.skipped["bad_image"] == sum(1 for n in range(900) if n % 7 == 3) + 1
    assert report.skipped["no_image"] == 2
    assert report.skipped["no_caption"] == 905 - report.usable - report.skipped["bad_image"] - 2
    assert 0 < report.decodable_ratio < 1
    assert sum(count for _, count in report.histogram()) == report.usable
    text = report.render()
    assert "usable rows" in text and "caption length" in text and "jpg, key" in text


def test_check_max_rows(clean_shards):
    report = check_shards(str(clean_shards), max_rows=130)
    assert report.checked == 130 and report.usable == 130 and report.decodable_ratio == 1.0
