"""`vlscale data import` of real zero-shot sets: class folders (ImageNet-style), labelled
webdataset / parquet shards; the class names and templates the zero-shot evaluator reads, and the
one-line refusals when they are missing or do not match the labels."""

import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlscale.cli import main
from vlscale.errors import UserError
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
from vlscale.platform.data import open_shards
from vlscale.platform.data.classes import check_zero_shot_shards
from vlscale.platform.data.importer import import_shards
from vlscale.platform.data.schema import ShardWriter, shard_schema, write_manifest

from helpers.cli import assert_one_line_error, tree_state
from helpers.shards import add_tar_member, png_bytes, read_shards

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _pictures(count: int) -> list[tuple[np.ndarray, int]]:
    """Real Fashion-MNIST test items (grey 28x28) and their labels when Debian's package is
    installed, else generated pictures (a bright square whose place depends on the label)."""
    if (FASHION / "t10k-images-idx3-ubyte.gz").exists():
        from vlscale.platform.data.fashion import load_split

        images, labels = load_split(FASHION, "test")
        return [(images[i], int(labels[i])) for i in range(count)]
    pictures = []
    for i in range(count):
        label, pixels = i % 10, np.zeros((28, 28), np.uint8)
        pixels[2 * label:2 * label + 8, 20 - 2 * label:28 - 2 * label] = 200 + i % 50
        pictures.append((pixels, label))
    return pictures


def _class_folders(root: Path, count: int = 40) -> list[str]:
    """root/<fashion class>/<image>: JPEG and PNG files (as ImageNet's .JPEG, upper case too),
    plus a stray text file. Returns the sorted folder names."""
    from vlscale.platform.data.fashion import CLASS_NAMES

    for i, (pixels, label) in enumerate(_pictures(count)):
        folder = root / CLASS_NAMES[label].replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:04d}.{'png' if i % 2 else 'JPEG'}")
    folders = sorted(p.name for p in root.iterdir())
    (root / folders[0] / "LICENSE.txt").write_text("not an image")
    return folders


def _tiny_clip_zero_shot(zeroshot: Path) -> dict[str, float]:
    """The registered evaluators of a tiny CPU CLIP on a cell whose zero-shot data is
    `zeroshot`: the zero-shot evaluator's real code path."""
    import torch

    from vlscale.platform.data import Preprocess
    from vlscale.platform.data.fashion import vocabulary
    from vlscale.platform.models import create_task, model_profile
    from vlscale.platform.train.evaluate import evaluate_cell

    cell = Cell(ModelSpec("clip", "cpu-w32-l1"),
                DataSpec("fashion", str(zeroshot), zeroshot=str(zeroshot), eval_samples=32),
                TrainSpec(samples_seen=64, global_batch=16, lr=1e-3, eval_batch_size=16))
    profile = model_profile("clip", "cpu-w32-l1")
    torch.manual_seed(0)
    preprocess = Preprocess(profile.image_size, profile.tokenizer, profile.context_length,
                            tuple(vocabulary()), profile.mean, profile.std)
    return evaluate_cell(create_task(cell.model), cell, profile, torch.device("cpu"),
                         preprocess)


def test_class_folder_import_is_a_zero_shot_set_the_evaluator_runs(tmp_path):
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    folders = _class_folders(tmp_path / "src")
    manifest = import_shards(tmp_path / "src", tmp_path / "zs")
    names = [f.replace("_", " ") for f in folders]
    assert manifest["split"] == "zeroshot" and manifest["class_names"] == names
    assert "ankle boot" in names and manifest["skipped"] == {"not_image": 1}
    assert len(manifest["templates"]) == len(OPENAI_IMAGENET_TEMPLATES) == 80
    assert [t.format("sneaker") for t in manifest["templates"]] == \
        [template("sneaker") for template in OPENAI_IMAGENET_TEMPLATES]
    table = read_shards(tmp_path / "zs")
    labels = table.column("label").to_pylist()
    paths = [json.loads(m)["path"] for m in table.column("meta").to_pylist()]
    assert len(labels) == manifest["num_rows"] == 40
    assert [folders[label] for label in labels] == [p.split("/")[0] for p in paths]
    assert table.column("txt").to_pylist() == [names[label] for label in labels]
    assert labels != sorted(labels)  # shuffled: the first eval rows span the classes
    shards = open_shards(str(tmp_path / "zs"))
    check_zero_shot_shards(shards)
    assert shards.class_names == names and shards.templates == manifest["templates"]
    scores = _tiny_clip_zero_shot(tmp_path / "zs")["zeroshot"]
    assert set(scores) == {"acc1", "acc5", "mean_per_class_recall"}
    assert all(0.0 <= value <= 1.0 for value in scores.values())


def test_imagenet_classnames_are_open_clips_with_openai_templates(tmp_path):
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, SIMPLE_IMAGENET_TEMPLATES

    source = tmp_path / "imagenet"
    wnids = [f"n{index:08d}" for index in range(1000)]  # sorted order = class order
    for wnid in wnids:
        (source / wnid).mkdir(parents=True)
    picture = Image.fromarray(_pictures(1)[0][0])
    for label in (0, 1, 999):
        picture.save(source / wnids[label] / f"{wnids[label]}_1.JPEG")
    with pytest.raises(UserError, match="WordNet ids .*--classnames imagenet"):
        import_shards(source, tmp_path / "nameless")
    manifest = import_shards(source, tmp_path / "zs", class_names="imagenet")
    assert manifest["class_names"] == list(IMAGENET_CLASSNAMES) and len(IMAGENET_CLASSNAMES) == 1000
    assert manifest["templates"][0] == "a bad photo of a {}." and len(manifest["templates"]) == 80
    table = read_shards(tmp_path / "zs")
    assert sorted(table.column("txt").to_pylist()) == sorted(
        IMAGENET_CLASSNAMES[i] for i in (0, 1, 999))  # tench, goldfish, toilet paper
    simple = import_shards(source, tmp_path / "simple", class_names="imagenet", templates="simple")
    assert len(simple["templates"]) == len(SIMPLE_IMAGENET_TEMPLATES) == 7
    (source / wnids[-1] / f"{wnids[-1]}_1.JPEG").unlink()
    (source / wnids[-1]).rmdir()
    with pytest.raises(UserError, match="999 class folders but --classnames imagenet names 1000"):
        import_shards(source, tmp_path / "subset", class_names="imagenet")


def test_labels_of_webdataset_and_parquet_imports(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nowl\n")
    tars = tmp_path / "tars"
    tars.mkdir()
    with tarfile.open(tars / "000.tar", "w") as archive:  # clip_benchmark's layout: no captions
        for index, label in enumerate((2, 0, 1)):
            add_tar_member(archive, f"{index:04d}.webp", png_bytes(seed=index))
            add_tar_member(archive, f"{index:04d}.cls", str(label).encode())
        add_tar_member(archive, "0003.webp", png_bytes(seed=3))  # no label: skipped and counted
    manifest = import_shards(tars, tmp_path / "from-tar", class_names=str(names),
                             templates="simple")
    assert manifest["class_names"] == ["cat", "dog", "owl"] and manifest["split"] == "zeroshot"
    assert manifest["skipped"] == {"no_label": 1}
    table = read_shards(tmp_path / "from-tar")
    assert table.column("label").to_pylist() == [2, 0, 1]
    assert table.column("txt").to_pylist() == ["owl", "cat", "dog"]  # the class name
    check_zero_shot_shards(open_shards(str(tmp_path / "from-tar")))

    parquet = tmp_path / "parquet"
    parquet.mkdir()
    pq.write_table(pa.table({"key": ["a", "b", "c"], "jpg": [png_bytes(seed=i) for i in range(3)],
                             "txt": ["a tabby", "a puppy", ""], "cls": ["dog", "0", "owl"]}),
                   parquet / "00000.parquet")
    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps(["a photo of a {}.", "a {} in the wild."]))
    (tmp_path / "names.json").write_text(json.dumps(["cat", "dog", "owl"]))
    manifest = import_shards(parquet, tmp_path / "from-parquet", label_key="cls",
                             class_names=str(tmp_path / "names.json"), templates=str(templates))
    assert manifest["templates"] == ["a photo of a {}.", "a {} in the wild."]
    assert manifest["parameters"]["label_key"] == "cls"
    table = read_shards(tmp_path / "from-parquet")
    assert table.column("label").to_pylist() == [1, 0, 2]
    assert table.column("txt").to_pylist() == ["a tabby", "a puppy", "owl"]
    unlabelled = import_shards(parquet, tmp_path / "captioned", labels=False)
    assert "class_names" not in unlabelled and unlabelled["split"] == "train"
    assert "label" not in read_shards(tmp_path / "captioned").column_names


def _refused(tmp_path: Path, capsys, args: list[str], *needles: str) -> None:
    """`vlscale data import ARGS` exits 2 with one line naming every needle, writing nothing."""
    before = tree_state(tmp_path)
    code = main(["data", "import", *map(str, args)])
    assert_one_line_error(SimpleNamespace(returncode=code, stderr=capsys.readouterr().err),
                          *needles)
    assert tree_state(tmp_path) == before


def test_labels_without_or_beyond_class_names_are_refused(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    pq.write_table(pa.table({"jpg": [png_bytes(seed=i) for i in range(4)],
                             "txt": ["a", "b", "c", "d"], "label": [0, 1, 2, 5]}),
                   source / "00000.parquet")
    _refused(tmp_path, capsys, [source, tmp_path / "out"], "is labelled", "--classnames",
             "--no-labels")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nowl\n")
    _refused(tmp_path, capsys, [source, tmp_path / "out", "--classnames", names],
             "label 5", "outside the 3 class names", "names.txt")
    _refused(tmp_path, capsys, [source, tmp_path / "out", "--classnames", "imagenett"],
             "no such file", "imagenet")
    bad = tmp_path / "bad.txt"
    bad.write_text("a photo of a cat\n")
    _refused(tmp_path, capsys, [source, tmp_path / "out", "--classnames", names,
                                "--templates", bad], "exactly one {}")
    folders = _class_folders(tmp_path / "folders", count=30)
    _refused(tmp_path, capsys, [tmp_path / "folders", tmp_path / "out", "--classnames", names],
             f"{len(folders)} class folders", "names 3 classes")


def _nameless_zero_shot_set(directory: Path) -> Path:
    writer = ShardWriter(directory, shard_schema(with_label=True))
    for i in range(4):
        writer.add({"key": str(i), "jpg": png_bytes(seed=i), "txt": "x", "label": i % 2})
    write_manifest(directory, writer="test", split="zeroshot", parameters={}, seed=None,
                   shards=writer.close(), image_size=None, verified=True)
    return directory


def test_a_zero_shot_set_without_names_is_refused_before_training(tmp_path, clean_shards):
    from vlscale.platform.train.runner import check_cell_data

    nameless = _nameless_zero_shot_set(tmp_path / "nameless")
    cell = Cell(ModelSpec("clip", "cpu-w32-l1"),
                DataSpec("synth", str(clean_shards), zeroshot=str(nameless)),
                TrainSpec(samples_seen=64, global_batch=16, lr=1e-3))
    with pytest.raises(UserError) as raised:
        check_cell_data(cell)
    message = str(raised.value)
    assert "\n" not in message and "has no class_names or templates" in message
    assert "--classnames" in message and str(nameless) in message
    unlabelled = Cell(cell.model, DataSpec("synth", str(clean_shards), zeroshot=str(clean_shards)),
                      cell.train)
    with pytest.raises(UserError, match="has no label column.*--label-key"):
        check_cell_data(unlabelled)


def test_zero_shot_labels_outside_the_class_names_are_a_user_error():
    import torch

    from vlscale.platform.models import zero_shot_classification

    class Model(torch.nn.Module):
        def encode_image(self, images, normalize=True):
            return images

        def encode_text(self, texts, normalize=True):
            return torch.nn.functional.one_hot(texts[:, 0], 2).float()

    def tokenizer(prompts):
        return torch.tensor([[0 if "cat" in p else 1] for p in prompts])

    images = torch.eye(2)
    with pytest.raises(UserError, match="outside the 2 class names"):
        zero_shot_classification(Model(), [(images, torch.tensor([0, 2]))], ["cat", "dog"],
                                 ["a {}"], tokenizer)
