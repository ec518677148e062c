"""MaMMUT (Kuo et al. 2023) on open_clip building blocks, as trained in Nezhurina et al. 2025.

open_clip has no MaMMUT; the paper trained it with LAION's fork (open_clip_mammut). This module
follows that fork: one decoder-only text transformer used twice.

- Contrastive pass: the whole caption, no causal mask, no cross-attention; the text embedding is
  the mean of the final-LayerNorm token states over all positions (padding included, as in the
  fork); its width is the embedding size (no projection).
- Captioning pass: `text[:, :-1]` with a causal mask; a cross-attention block to all image tokens
  (mapped from vision width to text width by `map_viz2txt_kv`, drawn from N(0, 1) as in the fork)
  follows every `cross_attn_every`-th self-attention layer (layers 0, 2, 4, ...); the vocabulary
  head starts at zero.
- Vision: open_clip's ViT, pooled by the mean of all tokens (class token included), then
  LayerNorm, then the projection to the embedding size.

`mlp_before_cross_attn` is the fork's `has_mlp`: False drops the MLP of the self-attention blocks
that a cross-attention follows. The paper's small models (text width <= 512) ran with False, its
B-16/L/H models with the fork's default True; the configs reproduce both (their parameter counts
match the paper's table).

Unlike the fork, the contrastive pass does not compute vocabulary logits it then throws away (see
`profiles.py` for how the compute axis accounts for that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.model import CLIPVisionCfg
from open_clip.transformer import LayerNorm, ResidualAttentionBlock, VisionTransformer
from torch import nn


@dataclass
class MammutTextCfg:
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0
    cross_attn_every: int = 2
    """A cross-attention block follows self-attention layer i when i % cross_attn_every == 0."""
    mlp_before_cross_attn: bool = False
    """Keep the MLP of self-attention blocks followed by cross-attention (the fork's has_mlp)."""


class MeanPooledVisionTransformer(VisionTransformer):
    """open_clip's ViT pooled by the mean of all tokens, class token included (the fork's "avg_all").

    Returns (pooled, tokens) where tokens are all final states, before `ln_post`.
    """

    def _global_pool(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.mean(dim=1), x


class SelfAttentionBlock(ResidualAttentionBlock):
    """A residual self-attention block without the MLP half."""

    def __init__(self, d_model: int, n_head: int, **kwargs) -> None:
        super().__init__(d_model, n_head, **kwargs)
        del self.ln_2, self.mlp, self.ls_2

    def forward(self, q_x: torch.Tensor, k_x=None, v_x=None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return q_x + self.ls_1(self.attention(q_x=self.ln_1(q_x), attn_mask=attn_mask))


class MammutTextDecoder(nn.Module):
    """The decoder-only text tower, with one method per pass."""

    def __init__(self, cfg: MammutTextCfg, act_layer=nn.GELU, norm_layer=LayerNorm) -> None:
        super().__init__()
        if cfg.cross_attn_every < 1:
            raise ValueError(f"cross_attn_every must be >= 1, got {cfg.cross_attn_every}")
        self.context_length = cfg.context_length
        self.vocab_size = cfg.vocab_size
        self.width = cfg.width
        block_args = dict(mlp_ratio=cfg.mlp_ratio, act_layer=act_layer, norm_layer=norm_layer)

        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        self.resblocks = nn.ModuleList()
        self.cross_attn = nn.ModuleList()
        self.cross_attn_after: list[int] = []
        for layer in range(cfg.layers):
            followed_by_cross = layer % cfg.cross_attn_every == 0
            if followed_by_cross and not cfg.mlp_before_cross_attn:
                self.resblocks.append(SelfAttentionBlock(cfg.width, cfg.heads, **block_args))
            else:
                self.resblocks.append(ResidualAttentionBlock(cfg.width, cfg.heads, **block_args))
            if followed_by_cross:
                self.cross_attn_after.append(layer)
                self.cross_attn.append(ResidualAttentionBlock(
                    cfg.width, cfg.heads, is_cross_attention=True, **block_args))
        self.ln_final = norm_layer(cfg.width)
        self.vocab_projection = nn.Parameter(torch.zeros(cfg.width, cfg.vocab_size))
        causal = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu_(1)
        self.register_buffer("causal_mask", causal, persistent=False)

        # The fork's init: embeddings as open_clip's text tower, blocks left at PyTorch defaults.
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def _embed(self, text: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(text) + self.positional_embedding[: text.shape[1]]

    def contrastive_features(self, text: torch.Tensor) -> torch.Tensor:
        """[B, L] token ids -> [B, width]: bidirectional, no cross-attention, mean over positions."""
        x = self._embed(text)
        for block in self.resblocks:
            x = block(x)
        return self.ln_final(x).mean(dim=1)

    def caption_logits(self, text: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """[B, L] token ids, [B, N, width] image tokens -> [B, L, vocab] next-token logits."""
        seq_len = text.shape[1]
        mask = self.causal_mask[:seq_len, :seq_len]
        x = self._embed(text)
        cross_blocks = iter(self.cross_attn)
        for layer, block in enumerate(self.resblocks):
            x = block(x, attn_mask=mask)
            if layer in self.cross_attn_after:
                x = next(cross_blocks)(x, k_x=image_tokens, v_x=image_tokens)
        return self.ln_final(x) @ self.vocab_projection


class MaMMUT(nn.Module):
    """Image tower + decoder-only text tower; `forward` runs both text passes."""

    def __init__(self, embed_dim: int, vision_cfg: CLIPVisionCfg | dict,
                 text_cfg: MammutTextCfg | dict, init_logit_scale: float = math.log(1 / 0.07),
                 map_viz2txt_init: str = "normal") -> None:
        super().__init__()
        vision_cfg = CLIPVisionCfg(**vision_cfg) if isinstance(vision_cfg, dict) else vision_cfg
        text_cfg = MammutTextCfg(**text_cfg) if isinstance(text_cfg, dict) else text_cfg
        if embed_dim != text_cfg.width:
            raise ValueError(f"MaMMUT has no text projection: embed_dim ({embed_dim}) must equal "
                             f"the text width ({text_cfg.width})")
        self.visual = MeanPooledVisionTransformer(
            image_size=vision_cfg.image_size,
            patch_size=vision_cfg.patch_size,
            width=vision_cfg.width,
            layers=vision_cfg.layers,
            heads=vision_cfg.width // vision_cfg.head_width,
            mlp_ratio=vision_cfg.mlp_ratio,
            ls_init_value=vision_cfg.ls_init_value,
            patch_dropout=vision_cfg.patch_dropout,
            output_dim=embed_dim,
            pool_type="avg",  # overridden by MeanPooledVisionTransformer._global_pool
            final_ln_after_pool=True,
            output_tokens=True,
        )
        self.text = MammutTextDecoder(text_cfg)
        # "normal": N(0, 1), the fork's init. A LayerNorm on keys/values follows, so the forward is
        # scale-free, but the training is not: AdamW's update is about lr whatever the gradient
        # scale, so a "fan_in" (N(0, 1/width)) matrix moves ~sqrt(width) times faster relative to
        # its size (see `ModelSpec.map_viz2txt_init`).
        if map_viz2txt_init not in ("normal", "fan_in"):
            raise ValueError(f"unknown map_viz2txt_init {map_viz2txt_init!r}; use normal or fan_in")
        kv_std = 1.0 if map_viz2txt_init == "normal" else vision_cfg.width ** -0.5
        self.map_viz2txt_kv = nn.Parameter(torch.randn(vision_cfg.width, text_cfg.width) * kv_std)
        self.logit_scale = nn.Parameter(torch.ones([]) * init_logit_scale)
        self.context_length = text_cfg.context_length
        self.vocab_size = text_cfg.vocab_size

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features, _ = self.visual(images)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, texts: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = self.text.contrastive_features(texts)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both passes: normalised features for the contrastive loss, logits for the caption loss.

        `caption_logits[:, i]` predicts `texts[:, i + 1]`.
        """
        image_features, image_tokens = self.visual(images)
        image_tokens = image_tokens @ self.map_viz2txt_kv
        return {
            "image_features": F.normalize(image_features, dim=-1),
            "text_features": self.encode_text(texts, normalize=True),
            "logit_scale": self.logit_scale.exp(),
            "caption_logits": self.text.caption_logits(texts[:, :-1], image_tokens),
        }
