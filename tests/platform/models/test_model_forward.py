import pytest
import torch

from vlscale.platform.config import ModelSpec
from vlscale.platform.models import CPU_VOCAB_SIZE, MaMMUT, create_task, list_architectures
from vlscale.platform.models.tokenizers import EOT_ID, PAD_ID, SOT_ID

CPU_ARCHS = list_architectures("cpu")


def make_batch(batch_size: int = 4, context_length: int = 32, caption_tokens: int = 10, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, 32, 32, generator=generator)
    texts = torch.full((batch_size, context_length), PAD_ID)
    texts[:, 0] = SOT_ID
    texts[:, 1:caption_tokens + 1] = torch.randint(4, CPU_VOCAB_SIZE, (batch_size, caption_tokens),
                                                   generator=generator)
    texts[:, caption_tokens + 1] = EOT_ID
    return images, texts


@pytest.mark.parametrize("arch", CPU_ARCHS)
@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_forward_backward_whole_cpu_ladder(model_type, arch):
    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, arch))
    images, texts = make_batch()
    losses = task(images, texts)
    expected = {"loss", "contrastive_loss"} | ({"caption_loss"} if model_type == "mammut" else set())
    assert set(losses) == expected
    assert all(value.ndim == 0 and torch.isfinite(value) for value in losses.values())
    losses["loss"].backward()
    missing = [name for name, p in task.named_parameters() if p.grad is None]
    assert not missing
    features = task.model.encode_image(images, normalize=True)
    assert features.shape == task.model.encode_text(texts, normalize=True).shape
    assert torch.allclose(features.norm(dim=-1), torch.ones(len(images)))


@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_loss_decreases_on_a_fixed_batch(model_type):
    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, "cpu-w64-l2"))
    images, texts = make_batch(batch_size=8)
    optimizer = torch.optim.AdamW(task.parameters(), lr=3e-3)
    history = []
    for _ in range(15):
        loss = task(images, texts)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.7 * history[0]


def test_mammut_weighted_total_and_initial_caption_loss():
    torch.manual_seed(0)
    task = create_task(ModelSpec("mammut", "cpu-w32-l1", contrastive_weight=0.5, caption_weight=3.0))
    losses = task(*make_batch())
    assert losses["loss"].item() == pytest.approx(
        0.5 * losses["contrastive_loss"].item() + 3.0 * losses["caption_loss"].item(), rel=1e-5)
    # The vocabulary head starts at zero: uniform next-token distribution.
    assert losses["caption_loss"].item() == pytest.approx(torch.log(torch.tensor(512.0)).item(), rel=1e-5)


def test_mammut_structure_follows_the_paper_fork():
    torch.manual_seed(0)
    model = create_task(ModelSpec("mammut", "cpu-w64-l2")).model
    assert isinstance(model, MaMMUT)
    decoder = model.text
    assert decoder.cross_attn_after == [0] and len(decoder.cross_attn) == 1
    assert not hasattr(decoder.resblocks[0], "mlp") and hasattr(decoder.resblocks[1], "mlp")
    assert torch.count_nonzero(decoder.vocab_projection) == 0
    assert model.encode_text(make_batch()[1]).shape[-1] == decoder.width  # no text projection
    paper_b16 = create_task(ModelSpec("mammut", "ViT-B-16"), device="meta").model.text
    assert all(hasattr(block, "mlp") for block in paper_b16.resblocks)  # the fork's has_mlp=True
    assert paper_b16.cross_attn_after == [0, 2, 4, 6, 8, 10]


def test_mammut_contrastive_pass_ignores_the_image_and_caption_pass_is_causal():
    torch.manual_seed(0)
    model = create_task(ModelSpec("mammut", "cpu-w64-l2")).model.eval()
    torch.nn.init.normal_(model.text.vocab_projection, std=0.1)
    images, texts = make_batch(batch_size=2)
    other_images = torch.randn_like(images)
    with torch.no_grad():
        out, out_other = model(images, texts), model(other_images, texts)
        changed_tail = texts.clone()
        changed_tail[:, 8:] = 7
        out_tail = model(images, changed_tail)
    assert torch.allclose(out["text_features"], out_other["text_features"])
    assert not torch.allclose(out["caption_logits"], out_other["caption_logits"])
    assert out["caption_logits"].shape == (2, 31, CPU_VOCAB_SIZE)
    assert torch.allclose(out["caption_logits"][:, :8], out_tail["caption_logits"][:, :8], atol=1e-5)
    assert not torch.allclose(out["text_features"], out_tail["text_features"])  # bidirectional


def test_same_seed_same_weights():
    weights = []
    for _ in range(2):
        torch.manual_seed(3)
        weights.append(create_task(ModelSpec("mammut", "cpu-w32-l1")).model.state_dict())
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
