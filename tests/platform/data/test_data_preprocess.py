import io

import numpy as np
import pytest
import torch
from PIL import Image

from vlscale.errors import UserError
from vlscale.platform.data import OPENAI_MEAN, OPENAI_STD, Preprocess, open_shards
from vlscale.platform.data.preprocess import decode_image, to_model_images

from helpers.shards import png_bytes


def _jpeg(size, seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _palette_png() -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes((30, 17)))).convert("P").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("data", [
    _jpeg((64, 48)), _jpeg((17, 40), seed=1), _jpeg((32, 32)), png_bytes((9, 9)),
    png_bytes((50, 21), "RGBA"), png_bytes((40, 60), "L"), _palette_png()],
    ids=["jpeg-wide", "jpeg-tall", "jpeg-same", "png-upscale", "rgba", "grey", "palette"])
def test_matches_open_clip_eval_transform(data):
    from open_clip.transform import image_transform

    expected = image_transform(32, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD)(
        Image.open(io.BytesIO(data)))
    ours = to_model_images(decode_image(data, 32)[None], OPENAI_MEAN, OPENAI_STD)[0]
    assert ours.shape == expected.shape == (3, 32, 32)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("data", [None, b"", b"garbage", _jpeg((64, 64))[:200],
                                  png_bytes((40, 40))[:-30]],
                         ids=["none", "empty", "garbage", "truncated-jpeg", "truncated-png"])
def test_bad_bytes_decode_to_none(data):
    assert decode_image(data, 32) is None


def test_preprocess_for_shards_takes_the_vocabulary(clean_shards):
    shards = open_shards(str(clean_shards))
    spec = Preprocess.for_shards(shards, 24, context_length=16)
    assert spec.vocabulary == tuple(shards.vocabulary)
    tokens = spec.build_tokenizer()(["a red circle on the left"])
    assert tokens.shape == (1, 16) and tokens.dtype == np.int64
    assert (tokens[0, 8:] == 0).all() and tokens[0, 7] == 2
    assert spec.describe()["vocabulary_size"] == len(shards.vocabulary)


def test_word_tokenizer_without_vocabulary_is_a_user_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"jpg": [png_bytes()], "txt": ["x"]}), tmp_path / "0.parquet")
    with pytest.raises(UserError, match="vocabulary"):
        Preprocess.for_shards(open_shards(str(tmp_path)), 32)
    assert Preprocess.for_shards(open_shards(str(tmp_path)), 32, tokenizer="bpe",
                                 context_length=77).vocabulary is None
