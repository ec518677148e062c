"""Every model reads the whole caption: its text embedding changes when any one word changes.

CLIP pools its causal text tower at one position; open_clip's default (argmax of the token ids)
is the end token only for its BPE. With the word tokenizer (end id 2) it pooled at the highest-id
word and ignored every word after it. The pooling now follows the ladder's tokenizer, and a
model/tokenizer pair that would pool elsewhere is refused.
"""

import pytest
import torch
from open_clip.model import CLIP

from vlscale.errors import UserError
from vlscale.platform.config import ModelSpec
from vlscale.platform.models import build_model, create_task, list_architectures, tokenizer_for
from vlscale.platform.models.families.clip import set_text_pooling as _set_text_pooling
from vlscale.platform.models.ladder import model_config, tokenizer_kind
from vlscale.platform.models.task import VLTask
from vlscale.platform.models.tokenizers import EOT_ID, build_tokenizer, check_text_pooling

VOCABULARY = [f"w{i}" for i in range(500)]
WORD_CAPTION = ["w499", "w5", "w6", "w7", "w8", "w9"]  # the highest id first: argmax pooled there
BPE_CAPTION = "a photo of the red cat".split()
CASES = [(model_type, arch) for arch in list_architectures("cpu") for model_type in ("clip", "mammut")]
CASES += [("clip", "ViT-S-32"), ("mammut", "ViT-S-32")]  # BPE (paper ladder)


def one_word_changed(words: list[str], replacement: str) -> list[str]:
    """The caption, then one copy per position with that word replaced."""
    return [" ".join(words)] + [" ".join(words[:i] + [replacement] + words[i + 1:])
                                for i in range(len(words))]


@pytest.mark.parametrize("model_type, arch", CASES)
def test_text_embedding_changes_when_any_one_word_changes(model_type, arch):
    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, arch))
    kind = task.profile.tokenizer
    assert kind == tokenizer_kind(arch) == ("words" if arch.startswith("cpu-") else "bpe")
    tokenizer = tokenizer_for(task.profile, VOCABULARY if kind == "words" else None)
    task.check_tokenizer(tokenizer)
    captions = (one_word_changed(WORD_CAPTION, "w1") if kind == "words"
                else one_word_changed(BPE_CAPTION, "zebra"))
    tokens = torch.as_tensor(tokenizer(captions))
    with torch.no_grad():
        embeddings = task.model.eval().encode_text(tokens, normalize=True)
    change = (embeddings[1:] - embeddings[0]).norm(dim=-1)
    ignored = (change <= 1e-3).nonzero().ravel().tolist()
    assert not ignored, f"caption positions whose word does not reach the embedding: {ignored}"


def test_clip_pools_at_each_tokenizers_end_token():
    """Word tokenizer: open_clip's "eos" pooling at id 2; BPE: open_clip's default unchanged."""
    words_config = model_config("clip", "cpu-w32-l1")["text_cfg"]
    assert (words_config["pool_type"], words_config["eos_id"]) == ("eos", EOT_ID)
    bpe_config = model_config("clip", "ViT-B-32")["text_cfg"]
    assert bpe_config["pool_type"] == "argmax" and "eos_id" not in bpe_config
    for arch in list_architectures():
        model = build_model("clip", arch, device="meta")
        tokenizer = (build_tokenizer("words", 32, VOCABULARY) if tokenizer_kind(arch) == "words"
                     else build_tokenizer("bpe", 77))
        check_text_pooling(model.text_pool_type, model.text_eos_id, tokenizer)


def test_pooling_that_misses_the_end_token_is_refused():
    words = build_tokenizer("words", 32, VOCABULARY)
    bpe = build_tokenizer("bpe", 77)
    with pytest.raises(ValueError, match="end token 2 of the words tokenizer"):
        check_text_pooling("argmax", None, words)  # the old CPU-ladder CLIP
    with pytest.raises(ValueError, match="end token 49407 of the bpe tokenizer"):
        check_text_pooling("eos", EOT_ID, bpe)
    # A CLIP built from a config without vlscale's pooling (open_clip's argmax default):
    config = model_config("clip", "cpu-w32-l1")
    for key in ("pool_type", "eos_id"):
        config["text_cfg"].pop(key)
    with torch.device("meta"):
        task = VLTask(CLIP(**config, output_dict=True), ModelSpec("clip", "cpu-w32-l1"))
    with pytest.raises(ValueError, match="would ignore part of every caption"):
        task.check_tokenizer(words)
    with pytest.raises(ValueError, match="vocabulary holds 512"):
        create_task(ModelSpec("clip", "cpu-w32-l1"), device="meta").check_tokenizer(bpe)


def test_config_that_contradicts_the_tokenizer_is_a_user_error():
    with pytest.raises(UserError, match="needs 'eos'"):
        _set_text_pooling({"text_cfg": {"pool_type": "argmax"}}, "cpu-w32-l1")
    with pytest.raises(UserError, match="needs 'argmax'"):
        _set_text_pooling({"text_cfg": {"pool_type": "eos"}}, "ViT-B-32")
