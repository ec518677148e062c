"""Bad input to the data commands is one line on stderr and exit code 2, and touches nothing:
damaged source files (a corrupt parquet page, a cut parquet footer, a truncated tar), output paths
that cannot be written, and sizes that cannot fit in memory or on disk.

Every case runs the real CLI in its own process on real damaged files.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers.cli import assert_one_line_error, run_cli, tree_state
from helpers.shards import png_bytes, write_synth_shards

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _corrupt_caption_page(path: Path) -> None:
    """Overwrite 64 bytes in the middle of the first row group's caption (txt) column chunk:
    its snappy-compressed page no longer decompresses."""
    metadata = pq.ParquetFile(path).metadata
    names = [metadata.row_group(0).column(i).path_in_schema
             for i in range(metadata.num_columns)]
    chunk = metadata.row_group(0).column(names.index("txt"))
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    middle = start + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[middle:middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.fixture
def corrupt(tmp_path: Path) -> Path:
    """A shard folder whose second shard has a corrupt caption page."""
    folder = write_synth_shards(tmp_path / "corrupt", 40, rows_per_shard=20, rows_per_group=10,
                                image_size=8)
    _corrupt_caption_page(folder / "00001.parquet")
    with pytest.raises(OSError, match="(?i)corrupt"):  # the damage is real
        pq.read_table(folder / "00001.parquet")
    return folder


def _refused(cwd: Path, args: list, *needles: str) -> None:
    before = tree_state(cwd)
    assert_one_line_error(run_cli(["data", *args], cwd, cwd / ".vlscale"), *needles)
    assert tree_state(cwd) == before


def test_check_names_a_corrupt_page(corrupt, tmp_path):
    _refused(tmp_path, ["check", "corrupt"], "00001.parquet", "corrupt or truncated",
             "re-download")


def test_import_of_a_corrupt_page_writes_nothing(corrupt, tmp_path):
    _refused(tmp_path, ["import", "corrupt", "out"], "00001.parquet", "corrupt or truncated")


def test_degrade_of_a_corrupt_page_writes_nothing(corrupt, tmp_path):
    _refused(tmp_path, ["degrade", "corrupt", "out", "--swap-captions", "0.5"],
             "00001.parquet", "corrupt or truncated")


def test_check_of_a_cut_footer(tmp_path):
    folder = write_synth_shards(tmp_path / "cut", 20, rows_per_shard=20, rows_per_group=10,
                                image_size=8)
    shard = folder / "00000.parquet"
    shard.write_bytes(shard.read_bytes()[:-100])
    _refused(tmp_path, ["check", "cut"], "00000.parquet", "not a readable parquet file")


def _webdataset_tar(samples: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for index in range(samples):
            for extension, data in (("png", png_bytes()), ("txt", b"a red square")):
                info = tarfile.TarInfo(f"{index:05d}.{extension}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("cut", ["at a block boundary", "inside a member", "gzip"])
def test_import_of_a_truncated_tar(tmp_path, cut):
    whole = _webdataset_tar(6)
    tars = tmp_path / "tars"
    tars.mkdir()
    name = "shard.tar.gz" if cut == "gzip" else "shard.tar"
    if cut == "gzip":
        packed = gzip.compress(whole)
        data = packed[: len(packed) // 2]
    else:  # tarfile reads a tar cut at a block boundary as a shorter, valid one
        boundary = len(whole) // 2 // tarfile.BLOCKSIZE * tarfile.BLOCKSIZE
        data = whole[: boundary + (0 if cut == "at a block boundary" else 100)]
    (tars / name).write_bytes(data)
    _refused(tmp_path, ["import", "tars", "out"], name, "corrupt or truncated")


def test_import_of_a_whole_tar_works(tmp_path):
    (tmp_path / "tars").mkdir()
    (tmp_path / "tars" / "shard.tar").write_bytes(_webdataset_tar(6))
    result = run_cli(["data", "import", "tars", "out"], tmp_path, tmp_path / ".vlscale")
    assert result.returncode == 0, result.stderr
    assert "6 rows" in result.stdout


def test_synth_into_an_existing_file(tmp_path):
    (tmp_path / "taken").write_text("a file\n")
    write_synth_shards(tmp_path / "src", 10, rows_per_shard=10, rows_per_group=10, image_size=8)
    _refused(tmp_path, ["synth", "taken", "--samples", "4"], "existing file", "folder path")
    _refused(tmp_path, ["import", "src", "taken/out"], "existing file")


def test_synth_into_a_read_only_folder(tmp_path):
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o555)
    try:
        _refused(tmp_path, ["synth", "locked", "--samples", "4"], "read-only", "chmod")
        _refused(tmp_path, ["synth", "locked/out", "--samples", "4"], "read-only", "chmod")
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_an_image_size_that_does_not_fit_in_memory(tmp_path):
    _refused(tmp_path, ["synth", "out", "--samples", "4", "--image-size", "60000",
                        "--workers", "1"], "--image-size 60000", "GiB", "smaller --image-size")


def test_a_sample_count_that_does_not_fit_on_disk(tmp_path):
    _refused(tmp_path, ["synth", "out", "--samples", str(10**13), "--image-size", "8"],
             "GiB", "free", "fewer --samples")


def test_fashion_absurd_image_size(tmp_path):
    if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's Fashion-MNIST is not installed")
    _refused(tmp_path, ["fashion", "out", "--image-size", "100000", "--samples", "4"],
             "--image-size 100000", "JPEG")
