"""Writers: layout, manifests, determinism (same seed -> identical bytes), Fashion-MNIST."""

import json
from pathlib import Path

import pytest

from vlscale.errors import UserError
from vlscale.platform.data import open_shards
from vlscale.platform.data.fashion import CLASS_NAMES, find_source, write_fashion
from vlscale.platform.data.synth import class_names, vocabulary, write_synth
from vlscale.platform.models.tokenizers import split_words

from helpers.shards import read_shards

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_synth_is_deterministic_whatever_the_process_count(tmp_path):
    kwargs = dict(samples=700, image_size=16, seed=5, eval_samples=120, zeroshot_samples=160,
                  rows_per_shard=300)
    write_synth(tmp_path / "a", workers=1, **kwargs)
    write_synth(tmp_path / "b", workers=2, **kwargs)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    write_synth(tmp_path / "c", workers=1, **{**kwargs, "seed": 6})
    assert _files(tmp_path / "a")["train/00000.parquet"] != _files(tmp_path / "c")[
        "train/00000.parquet"]


def test_synth_layout_and_vocabulary(tmp_path):
    write_synth(tmp_path, samples=400, image_size=16, seed=0, eval_samples=100,
                zeroshot_samples=160, workers=1)
    train, held_out, zeroshot = (open_shards(str(tmp_path / s))
                                 for s in ("train", "eval", "zeroshot"))
    assert (train.num_rows, held_out.num_rows, zeroshot.num_rows) == (400, 100, 160)
    assert train.verified and train.manifest["writer"] == "synth"
    assert train.manifest["image_size"] == 16 and train.manifest["seed"] == 0
    assert train.vocabulary == held_out.vocabulary == zeroshot.vocabulary == vocabulary()
    assert zeroshot.has_labels and not train.has_labels
    assert zeroshot.class_names == class_names() and len(zeroshot.class_names) == 80
    words = set(vocabulary())
    texts = [*read_shards(tmp_path / "train").column("txt").to_pylist(),
             *zeroshot.class_names, *(t.format(c) for t in zeroshot.templates
                                      for c in zeroshot.class_names)]
    assert all(set(split_words(text)) <= words for text in texts)
    train_captions = read_shards(tmp_path / "train").column("txt").to_pylist()
    eval_captions = read_shards(tmp_path / "eval").column("txt").to_pylist()
    assert train_captions[:100] != eval_captions  # its own seed stream
    labels = read_shards(tmp_path / "zeroshot").column("label").to_pylist()
    assert sorted(set(labels)) == list(range(80))
    meta = json.loads(read_shards(tmp_path / "zeroshot").column("meta")[0].as_py())
    assert len(meta["objects"]) == 1
    assert class_names()[labels[0]] == f"{meta['objects'][0]['colour']} " \
                                       f"{meta['objects'][0]['shape']}"


def test_synth_refuses_a_non_empty_output(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(UserError, match="--overwrite"):
        write_synth(tmp_path, samples=10, workers=1)
    with pytest.raises(UserError, match="--image-size"):
        write_synth(tmp_path / "new", samples=10, image_size=4, workers=1)


def test_fashion_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        find_source(str(tmp_path))
    with pytest.raises(UserError, match="apt-get install"):
        write_fashion(tmp_path / "out", source=str(tmp_path))
    assert not (tmp_path / "out").exists()


@needs_fashion
def test_fashion_writer_with_the_debian_files(tmp_path):
    kwargs = dict(samples=300, eval_samples=100, zeroshot_samples=200, image_size=32, seed=1,
                  workers=1)
    manifests = write_fashion(tmp_path / "a", **kwargs)
    assert {k: m["num_rows"] for k, m in manifests.items()} == {"train": 300, "eval": 100,
                                                                "zeroshot": 200}
    zeroshot = open_shards(str(tmp_path / "a" / "zeroshot"))
    assert zeroshot.class_names == list(CLASS_NAMES) and zeroshot.has_labels
    assert zeroshot.manifest["parameters"]["source"] == str(FASHION_DIR)
    table = read_shards(tmp_path / "a" / "zeroshot")
    from vlscale.platform.data.fashion import load_split

    _, test_labels = load_split(FASHION_DIR, "test")
    assert table.column("label").to_pylist() == test_labels[:200].tolist()
    captions = read_shards(tmp_path / "a" / "train").column("txt").to_pylist()
    assert any(name in caption for caption in captions for name in CLASS_NAMES)
    assert all(set(split_words(c)) <= set(zeroshot.vocabulary) for c in captions)
    write_fashion(tmp_path / "b", **kwargs)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
