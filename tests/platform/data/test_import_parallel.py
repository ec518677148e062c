"""`vlscale data import` on Ray: the parallel import of real img2dataset parquet shards and
webdataset tars (real JPEGs, planted bad rows) writes the same shards (names, bytes, rows, usable
counts, manifest) as the one-process import, whatever the number of Ray workers; labelled sets
keep their class names and templates; a bad source is one line and writes nothing; the result
trains (open_shards, `vlscale data check`, the evaluation reader)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlscale.cli import main
from vlscale.errors import UserError
from vlscale.platform.data import open_shards
from vlscale.platform.data.check import check_shards
from vlscale.platform.data.import_tasks import (
    PARTS_DIR,
    RowRules,
    assemble,
    check_nodes_see,
    run_in_process,
    run_on_ray,
)
from vlscale.platform.data.importer import import_shards
from vlscale.platform.data.sources import shard_slices
from vlscale.testing.import_sources import (
    expected_skips,
    write_img2dataset_source,
    write_webdataset_source,
)

from helpers.cli import tree_state
from helpers.shards import read_shards

ROWS, SHARDS, BAD_EVERY = 24, 3, 5


@pytest.fixture(scope="module")
def parquet_source(tmp_path_factory) -> Path:
    """3 img2dataset parquet shards of 24 rows (row groups of 7), every 5th row bad."""
    return write_img2dataset_source(tmp_path_factory.mktemp("pq") / "src", shards=SHARDS,
                                    rows_per_shard=ROWS, rows_per_group=7, image_size=32,
                                    bad_every=BAD_EVERY)


@pytest.fixture(scope="module")
def tar_source(tmp_path_factory) -> Path:
    """3 webdataset tars of 24 samples, every 5th bad."""
    return write_webdataset_source(tmp_path_factory.mktemp("wds") / "src", shards=SHARDS,
                                   rows_per_shard=ROWS, image_size=32, bad_every=BAD_EVERY)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _same_output(a: Path, b: Path) -> None:
    """Same file names, byte-identical shards, same manifest but for the source path."""
    files_a, files_b = _files(a), _files(b)
    assert sorted(files_a) == sorted(files_b)
    manifest_a, manifest_b = (json.loads(files.pop("dataset.json"))
                              for files in (files_a, files_b))
    for manifest in (manifest_a, manifest_b):
        manifest["parameters"].pop("source")
    assert manifest_a == manifest_b
    assert files_a == files_b


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["parquet", "tar"])
def test_ray_import_writes_what_the_one_process_import_writes(
        ray_cluster, parquet_source, tar_source, tmp_path, kind):
    source = parquet_source if kind == "parquet" else tar_source
    single = import_shards(source, tmp_path / "single", workers=1, slice_rows=ROWS)
    ray2 = import_shards(source, tmp_path / "ray2", workers=2, slice_rows=ROWS)
    ray3 = import_shards(source, tmp_path / "ray3", workers=3, slice_rows=ROWS)  # > CPUs
    total = SHARDS * ROWS
    skips = expected_skips(total, BAD_EVERY)
    assert single["skipped"] == ray2["skipped"] == ray3["skipped"] == skips
    assert single["num_rows"] == total - sum(skips.values()) and single["verified"]
    # one output shard per slice (here: per source shard), named in source order
    assert [s["file"] for s in single["shards"]] == ["00000.parquet", "00001.parquet",
                                                      "00002.parquet"]
    _same_output(tmp_path / "single", tmp_path / "ray2")
    _same_output(tmp_path / "single", tmp_path / "ray3")
    table = read_shards(tmp_path / "ray2")
    good = [n for n in range(total) if n % BAD_EVERY != BAD_EVERY - 1]
    assert table.column("key").to_pylist() == [f"{n:09d}" for n in good]
    assert table.column("txt").to_pylist() == [f"a photo of thing number {n}" for n in good]
    fast = import_shards(source, tmp_path / "fast", workers=2, slice_rows=ROWS, verify=False)
    assert not fast["verified"] and "bad_image" not in fast["skipped"]
    assert fast["num_rows"] == single["num_rows"] + skips["bad_image"]
    if kind == "parquet":  # the source's own bytes, untouched
        source_table = pa.concat_tables(pq.read_table(p) for p in sorted(source.iterdir()))
        assert table.column("jpg").to_pylist() == [source_table.column("jpg")[n].as_py()
                                                   for n in good]
        assert json.loads(table.column("meta")[0].as_py()) == {"url": "http://example.com/0.jpg"}


@pytest.mark.timeout(240)
def test_slices_of_a_file_on_one_and_two_ray_workers(ray_cluster, parquet_source, tmp_path):
    """Several slices per parquet file (row groups of 7, 7, 7, 3 per file; slices of at most
    10 rows; with bigger slices small files are gathered), run in process and as Ray tasks
    with 1 and 2 at a time: same results, same bytes after assembly."""
    files = sorted(parquet_source.iterdir())
    slices = shard_slices(files, slice_rows=10)
    assert [[(Path(p.path).name, p.row_groups, p.first_row) for p in s.parts]
            for s in slices[:4]] == [[("00000.parquet", (0,), 0)], [("00000.parquet", (1,), 7)],
                                     [("00000.parquet", (2, 3), 14)], [("00001.parquet", (0,), 0)]]
    assert len(slices) == 9
    assert [[p.row_groups for p in s.parts] for s in shard_slices(files, slice_rows=30)[:2]] \
        == [[(0, 1, 2, 3)], [(0, 1, 2, 3)]]  # 24 + 7 > 30
    gathered = shard_slices(files, slice_rows=10_000)  # small files gathered into one slice
    assert len(gathered) == 1 and [p.first_row for p in gathered[0].parts] == [0, 0, 0]
    rules = RowRules(verify=True, label_key=None)
    outputs = {}
    for name, run in (("process", lambda parts: run_in_process(slices, rules, parts)),
                      ("ray1", lambda parts: run_on_ray(slices, rules, parts, workers=1)),
                      ("ray2", lambda parts: run_on_ray(slices, rules, parts, workers=2))):
        staging = tmp_path / name
        (staging / PARTS_DIR).mkdir(parents=True)
        results = run(staging / PARTS_DIR)
        outputs[name] = (results, assemble(staging, results), _files(staging))
    assert outputs["process"] == outputs["ray1"] == outputs["ray2"]
    results, shards, files_written = outputs["process"]
    assert not (tmp_path / "process" / PARTS_DIR).exists()
    assert sum(rows for _, rows in shards) == SHARDS * ROWS - sum(
        expected_skips(SHARDS * ROWS, BAD_EVERY).values())
    assert [r.index for r in results] == list(range(9))


@pytest.mark.timeout(240)
def test_labelled_sets_keep_class_names_and_templates_on_ray(ray_cluster, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nowl\n")
    tars = write_webdataset_source(tmp_path / "tars", shards=2, rows_per_shard=9, image_size=16,
                                   classes=3)
    parquet = write_img2dataset_source(tmp_path / "pq", shards=2, rows_per_shard=9,
                                       image_size=16, classes=3, rows_per_group=4)
    for source in (tars, parquet):
        single = import_shards(source, tmp_path / f"{source.name}-1", class_names=str(names),
                               templates="simple", workers=1, slice_rows=9)
        ray = import_shards(source, tmp_path / f"{source.name}-2", class_names=str(names),
                            templates="simple", workers=2, slice_rows=9)
        assert ray["class_names"] == ["cat", "dog", "owl"] and ray["split"] == "zeroshot"
        assert len(ray["templates"]) == 7 and ray["templates"] == single["templates"]
        _same_output(tmp_path / f"{source.name}-1", tmp_path / f"{source.name}-2")
        assert read_shards(tmp_path / f"{source.name}-2").column("label").to_pylist() == \
            [n % 3 for n in range(18)]
        assert open_shards(str(tmp_path / f"{source.name}-2")).class_names == ["cat", "dog",
                                                                               "owl"]


@pytest.mark.timeout(240)
def test_class_folders_in_parallel_slices(ray_cluster, tmp_path):
    """A class-folder set cut into slices of 7 shuffled files: Ray tasks write what one process
    writes (the same seeded order, labels, class names), and a stray file is still counted."""
    from PIL import Image

    for index in range(30):
        folder = tmp_path / "src" / ("ankle_boot", "bag", "coat")[index % 3]
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 12), (index * 8, 0, 255 - index * 8)).save(folder / f"{index}.png")
    (tmp_path / "src" / "bag" / "README").write_text("not an image")
    import_shards(tmp_path / "src", tmp_path / "one", workers=1, slice_rows=7)
    ray = import_shards(tmp_path / "src", tmp_path / "ray", workers=2, slice_rows=7)
    assert ray["class_names"] == ["ankle boot", "bag", "coat"]
    assert ray["skipped"] == {"not_image": 1} and len(ray["shards"]) == 5
    _same_output(tmp_path / "one", tmp_path / "ray")
    labels = read_shards(tmp_path / "ray").column("label").to_pylist()
    assert sorted(labels) == sorted(i % 3 for i in range(30)) and labels != sorted(labels)


def _damaged_tar(directory: Path) -> None:
    data = (directory / "00001.tar").read_bytes()
    (directory / "00001.tar").write_bytes(data[: len(data) // 2 // tarfile.BLOCKSIZE
                                               * tarfile.BLOCKSIZE])


@pytest.mark.timeout(240)
def test_a_bad_source_is_one_line_and_writes_nothing_on_ray(ray_cluster, tmp_path, capsys):
    tars = write_webdataset_source(tmp_path / "tars", shards=3, rows_per_shard=6, image_size=16)
    _damaged_tar(tars)
    before = tree_state(tmp_path)
    assert main(["data", "import", str(tars), str(tmp_path / "out"), "--workers", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "00001.tar is corrupt or truncated" in lines[0], lines
    assert tree_state(tmp_path) == before
    # a label the class names do not cover, found by a task on Ray
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    labelled = write_webdataset_source(tmp_path / "labelled", shards=2, rows_per_shard=6,
                                       image_size=16, classes=3)
    before = tree_state(tmp_path)
    with pytest.raises(UserError, match="label 2 of row .* is outside the 2 class names"):
        import_shards(labelled, tmp_path / "out", class_names=str(names), workers=2,
                      slice_rows=6)
    assert tree_state(tmp_path) == before


@pytest.mark.timeout(240)
def test_the_ray_import_trains(ray_cluster, tar_source, tmp_path, capsys):
    """open_shards reads it as verified with usable rows per row group = its rows, `vlscale
    data check` passes, and the evaluation reader yields every row in shard order."""
    from vlscale.platform.data import Preprocess, load_eval_batches

    assert main(["data", "import", str(tar_source), str(tmp_path / "out"),
                 "--workers", "2"]) == 0  # a slice per tar: 3 Ray tasks
    printed = capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    skips = ", ".join(f"{k}={v}" for k, v in sorted(manifest["skipped"].items()))
    assert f"{manifest['num_rows']} rows in 3 shard(s); skipped: {skips}" in printed
    shards = open_shards(str(tmp_path / "out"))
    assert shards.verified and shards.num_rows == manifest["num_rows"]
    assert [f.num_rows for f in shards.files] == [s["rows"] for s in manifest["shards"]]
    report = check_shards(shards)
    assert report.usable == report.rows == manifest["num_rows"]
    assert main(["data", "check", str(tmp_path / "out")]) == 0
    spec = Preprocess(16, "bpe", 16)
    batches = load_eval_batches(shards, spec, max_samples=10_000, batch_size=16)
    row_ids = [int(i) for batch in batches for i in batch["row_id"]]
    assert row_ids == list(range(manifest["num_rows"])) and batches.skipped_records == 0


@pytest.mark.timeout(120)
def test_a_cluster_needs_absolute_paths_every_node_sees(ray_cluster, parquet_source, tmp_path,
                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("vlscale.platform.cluster.alive_nodes", lambda: 2)
    with pytest.raises(UserError, match="2 nodes but out is a relative path.*every node"):
        import_shards(parquet_source, "out", workers=2, slice_rows=ROWS)
    assert not (tmp_path / "out").exists()
    # the probe runs a task on every (here: the one real) node
    check_nodes_see([str(parquet_source)])
    with pytest.raises(UserError, match="cannot see .*missing.*every node mounts"):
        check_nodes_see([str(parquet_source), str(tmp_path / "missing")])


def test_workers_must_be_positive(parquet_source, tmp_path):
    with pytest.raises(UserError, match="--workers 0"):
        import_shards(parquet_source, tmp_path / "out", workers=0)


def test_ray_runs_the_import_when_asked_or_when_the_source_is_big(parquet_source, tmp_path,
                                                                   monkeypatch):
    """The default (workers=None) stays in this process for a small source, where starting
    Ray would cost more than it saves; a named cluster or --workers N > 1 use Ray; a single
    slice or --workers 1 never does."""
    from vlscale.platform.data import importer

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    slices = shard_slices(sorted(parquet_source.iterdir()), slice_rows=ROWS)
    assert len(slices) == SHARDS
    assert not importer.uses_ray(slices, None, None)
    assert importer.uses_ray(slices, 2, None) and importer.uses_ray(slices, None, "auto")
    assert not importer.uses_ray(slices, 1, "auto") and not importer.uses_ray(slices[:1], 4, None)
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert importer.uses_ray(slices, None, None)
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES",
                        sum(p.stat().st_size for p in parquet_source.iterdir()))
    assert importer.uses_ray(slices, None, None) == (importer.available_cpus() > 1)
