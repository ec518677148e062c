import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest

from vlscale.errors import UserError
from vlscale.platform.config import ModelSpec
from vlscale.platform.models import (
    CPU_VOCAB_SIZE,
    build_model,
    build_tokenizer,
    create_task,
    forget_profiles_in_memory,
    list_architectures,
    model_profile,
    parameter_counts,
    tokenizer_for,
)


@pytest.fixture(scope="module")
def paper_profile(anchors_dir) -> dict[str, dict]:
    with open(anchors_dir / "lscomp_model_profile.csv") as handle:
        return {row["model"]: row for row in csv.DictReader(handle)
                if row["namespace"] in ("clip", "mammut")}


def test_paper_ladder_covers_the_paper_table(paper_profile):
    expected = {(row["namespace"], row["model_simple"]) for row in paper_profile.values()}
    ours = {(model_type, arch) for model_type in ("clip", "mammut")
            for arch in list_architectures("paper", model_type)}
    assert ours == expected


def relative_error(ours: float, theirs: str) -> float:
    return abs(ours / float(theirs) - 1)


def test_paper_ladder_parameters_match_the_paper(paper_profile):
    """Every architecture of both types, built on meta: total, image and text parameters to 0.1%."""
    for row in paper_profile.values():
        model = build_model(row["namespace"], row["model_simple"], device="meta")
        total, image, text = parameter_counts(model)
        for ours, theirs in ((total, "mparams"), (image, "image_mparams"), (text, "text_mparams")):
            assert relative_error(ours / 1e6, row[theirs]) < 1e-3, (row["model"], theirs, ours)


def check_profile_against_paper(row: dict) -> None:
    profile = model_profile(row["namespace"], row["model_simple"])
    assert profile.name == row["model"] and profile.flops_convention == "paper"
    assert profile.image_size == int(row["image_size"]) and profile.context_length == 77
    assert relative_error(profile.gflops, row["gflops"]) < 1e-3, (row["model"], profile.gflops)
    assert relative_error(profile.params_m, row["mparams"]) < 1e-3


@pytest.mark.parametrize("name", ["ViT-S-32", "ViT-S-32-alt", "ViT-B-32", "ViT-M-16",
                                  "mammut_ViT-B-32", "mammut_ViT-S-16", "mammut_ViT-B-16"])
def test_paper_gflops_match_the_paper(paper_profile, name):
    """A sample covering CLIP, -alt, MaMMUT without and with MLPs before cross-attention."""
    check_profile_against_paper(paper_profile[name])


@pytest.mark.slow
def test_whole_paper_ladder_gflops_match_the_paper(paper_profile):
    """All 35 architectures (about 25 s of FLOP counting on one core)."""
    for row in paper_profile.values():
        check_profile_against_paper(row)


def test_paper_convention_differs_from_true_flops_as_documented():
    clip = model_profile("clip", "ViT-B-32")
    mammut = model_profile("mammut", "ViT-B-32")
    # CLIP: the paper leaves out the attention-score matmuls (0.24 GFLOPs for ViT-B-32).
    assert clip.gflops_true - clip.gflops == pytest.approx(0.2379, abs=1e-3)
    # MaMMUT: ... and adds the fork's discarded contrastive-pass vocabulary logits.
    discarded = 2 * 77 * 512 * 49408 / 1e9
    assert mammut.gflops - mammut.gflops_true > discarded - 1.0


def test_cpu_ladder_grows_and_uses_the_true_figure():
    archs = list_architectures("cpu")
    assert len(archs) >= 4 and all(a.startswith("cpu-w") for a in archs)
    for model_type in ("clip", "mammut"):
        profiles = [model_profile(model_type, arch) for arch in archs]
        assert all(p.tokenizer == "words" and p.vocab_size == CPU_VOCAB_SIZE for p in profiles)
        assert all(p.gflops == p.gflops_true and p.flops_convention == "true" for p in profiles)
        params = [p.params_m for p in profiles]
        gflops = [p.gflops for p in profiles]
        assert params == sorted(params) and gflops == sorted(gflops)
        assert params[-1] / params[0] > 50


def test_mammut_costs_more_than_clip_of_the_same_arch():
    for arch in list_architectures("cpu"):
        assert model_profile("mammut", arch).gflops > model_profile("clip", arch).gflops


def test_profiles_are_cached_on_disk(tmp_path):
    forget_profiles_in_memory()
    profile = model_profile("clip", "cpu-w32-l1")
    cache = json.loads((tmp_path / "vlscale-home" / "cache" / "model_profiles.json").read_text())
    assert [entry["name"] for entry in cache.values()] == ["cpu-w32-l1"]
    forget_profiles_in_memory()
    assert model_profile("clip", "cpu-w32-l1") == profile


def test_a_cached_profile_is_read_without_importing_torch(tmp_path):
    """A sweep's driver, `vlscale status` and a dry run take profiles from the cache: importing
    torch and open_clip costs seconds of CPU at every sweep's start (bench/sweep_overhead.py)."""
    forget_profiles_in_memory()
    expected = model_profile("mammut", "cpu-w64-l2")  # counted here, cached under VLSCALE_HOME
    probe = ("import json, sys; from dataclasses import asdict\n"
             "from vlscale.platform.models import model_profile\n"
             "profile = model_profile('mammut', 'cpu-w64-l2')\n"
             "print(json.dumps([asdict(profile), sorted({'torch', 'open_clip'} & set(sys.modules))]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-2000:]
    profile, imported = json.loads(result.stdout)
    assert imported == []
    assert profile == json.loads(json.dumps(dataclasses.asdict(expected)))


def test_a_changed_config_is_counted_again(tmp_path, monkeypatch):
    """The cache key reads vlscale's own config file: an edited config is never served stale."""
    from vlscale.platform.models import ladder

    forget_profiles_in_memory()
    model_profile("clip", "cpu-w32-l1")
    configs = tmp_path / "configs"
    shutil.copytree(ladder.CONFIG_DIR, configs)
    path = configs / "cpu-w32-l1.json"
    config = json.loads(path.read_text())
    config["vision_cfg"]["width"] *= 2
    path.write_text(json.dumps(config))
    monkeypatch.setattr(ladder, "CONFIG_DIR", configs)
    assert ladder.config_identity("clip", "cpu-w32-l1") == path.read_text()
    forget_profiles_in_memory()
    model_profile("clip", "cpu-w32-l1")  # not the old entry: a second one, counted again
    cache = json.loads((tmp_path / "vlscale-home" / "cache" / "model_profiles.json").read_text())
    assert [entry["name"] for entry in cache.values()] == ["cpu-w32-l1", "cpu-w32-l1"]
    forget_profiles_in_memory()
    assert "open_clip:ViT-B-32" == ladder.config_identity("clip", "ViT-B-32")
    with pytest.raises(UserError, match="unknown clip architecture 'ViT-X'"):
        ladder.config_identity("clip", "ViT-X")


@pytest.mark.parametrize("model_type, arch, needle", [
    ("clip", "ViT-Z-99", "cpu-w64-l2"),
    ("mammut", "ViT-S-32-alt", "ViT-B-32"),
    ("siglip", "ViT-B-32", "clip, mammut"),
])
def test_unknown_names_list_the_known_ones(model_type, arch, needle):
    with pytest.raises(UserError, match=needle):
        create_task(ModelSpec(model_type, arch))
    with pytest.raises(UserError, match=needle):
        model_profile(model_type, arch)


def test_unknown_ladder_is_a_user_error():
    with pytest.raises(UserError, match="paper, cpu"):
        list_architectures("gpu")


def test_tokenizer_must_fit_the_model_vocabulary():
    profile = model_profile("mammut", "cpu-w32-l1")
    tokenizer = tokenizer_for(profile, ["red", "circle", "square"])
    assert tokenizer(["a red circle"]).shape == (1, profile.context_length)
    with pytest.raises(UserError, match="at most 508 words"):
        tokenizer_for(profile, [f"word{i}" for i in range(CPU_VOCAB_SIZE)])
    assert build_tokenizer("bpe", 77, vocab_size=49408).vocab_size == 49408


@pytest.mark.parametrize("weights", [dict(caption_weight=-1.0), dict(contrastive_weight=float("nan"))])
def test_bad_loss_weights_are_user_errors(weights):
    with pytest.raises(UserError, match="must be a finite number"):
        create_task(ModelSpec("mammut", "cpu-w32-l1", **weights))
