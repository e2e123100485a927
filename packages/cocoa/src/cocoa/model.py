"""The embedding model: a Qwen2-VL-architecture MLLM read at its last-token ``<EOS>`` state.

``CocoaModel`` owns the backbone (any ``Qwen2VLForConditionalGeneration``-compatible model), its tokenizer and image
processor, and two small extra parameters the CoCoA stages need (the patch-regression head and the learned mask /
copy-slot embedding). It builds every sequence itself so the layout is exact:

    [<|vision_start|> image tokens <|vision_end|>] text tokens <EOS> [copy: text tokens, image slots] [padding]

and always calls the backbone with explicit ``position_ids`` (multimodal RoPE from ``get_rope_index``; the copy
tokens simply continue the count after ``<EOS>``), an additive 4-D float mask from ``cocoa.masks`` and
``use_cache=False``. The embedding of an input is the L2-normalised final-layer hidden state at ``<EOS>``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from cocoa.losses import PatchHead, image_patch_targets
from cocoa.masks import InputAttention, attention_mask

HEADS_FILE = "cocoa_heads.pt"
SETTINGS_FILE = "cocoa_model.json"


@dataclass
class Item:
    """One side of a pair: optional text and optional image (at least one of them)."""

    text: str = ""
    image: Image.Image | None = None


def content_key(item: Item) -> tuple:
    """What an item says and shows: its text and its image's pixels (two items with equal keys are the same
    candidate, whichever record they came from)."""
    if item.image is None:
        return (item.text, None)
    img = item.image
    return (item.text, img.mode, img.size, hashlib.sha1(img.tobytes()).hexdigest())


@dataclass
class Batch:
    """A padded batch laid out for the backbone, with everything the losses need to find their positions."""

    input_ids: torch.Tensor  # (B, L)
    n_in: torch.Tensor  # (B,) input tokens including <EOS>
    n_copy: torch.Tensor  # (B,) reconstruction-copy tokens (0 outside stage 2)
    image_token: torch.Tensor  # (B, L) True where an image embedding is placed
    text_token: torch.Tensor  # (B, L) True at the input's own text tokens (maskable in stage 1)
    copy_text: torch.Tensor  # (B, L) True at copy tokens that repeat input text
    copy_slot: torch.Tensor  # (B, L) True at copy slots that regress image tokens
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    patch_targets: torch.Tensor | None  # (n image tokens, target dim), in the order image tokens appear


class CocoaModel(nn.Module):
    """Backbone + tokenizer + image processor + CoCoA heads, with exact sequence layout and <EOS> pooling."""

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer,
        image_processor,
        input_attention: InputAttention = "causal",
        max_text_tokens: int = 48,
        patch_pool: int = 2,
        processor=None,
    ):
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.processor = processor  # saved as a whole when given, so AutoProcessor reloads it
        self.input_attention: InputAttention = input_attention
        self.max_text_tokens = max_text_tokens
        self.patch_pool = patch_pool
        cfg = backbone.config
        vcfg = cfg.vision_config
        hidden = cfg.text_config.hidden_size
        self.merge = vcfg.spatial_merge_size
        self.channels = vcfg.in_channels
        self.temporal_patch = vcfg.temporal_patch_size
        self.patch_size = vcfg.patch_size
        target_dim = self.merge * self.merge * self.channels * patch_pool * patch_pool
        self.patch_head = PatchHead(hidden, target_dim)
        self.mask_embedding = nn.Parameter(torch.zeros(hidden))
        nn.init.normal_(self.mask_embedding, std=0.02)
        self.image_token_id = cfg.image_token_id
        self.vision_start_id = cfg.vision_start_token_id
        self.vision_end_id = cfg.vision_end_token_id
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no eos_token_id; CoCoA pools the <EOS> state")
        self.eos_id = int(eos)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)
        mask_tok = getattr(tokenizer, "mask_token_id", None)
        # stage-1 masked text positions get their own token when the tokenizer has one, else <unk>/pad
        self.mask_id = int(mask_tok if mask_tok is not None else (tokenizer.unk_token_id or self.pad_id))

    # ----------------------------------------------------------------------------------------------- layout
    def _text_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(ids[: self.max_text_tokens])

    def pixels(self, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixel rows, grid_thw) exactly as the image processor makes them.

        Images the processor would not resize (side multiples of patch x merge within its pixel budget) are
        rescaled, normalised and patchified here in one vectorised step, which is much faster than the
        processor's per-image path; anything else goes through the processor itself.
        """
        ip = self.image_processor
        arrays = [np.asarray(im.convert("RGB")) for im in images]
        shapes = {a.shape for a in arrays}
        factor = self.patch_size * self.merge
        budget = (getattr(ip, "min_pixels", None), getattr(ip, "max_pixels", None))
        if (
            len(shapes) == 1
            and None not in budget
            and getattr(ip, "do_rescale", True)
            and getattr(ip, "do_normalize", True)
        ):
            h, w, _ = arrays[0].shape
            if (
                smart_resize(h, w, factor=factor, min_pixels=budget[0], max_pixels=budget[1]) == (h, w)
                and h % factor == 0
                and w % factor == 0
            ):
                return self._patchify(arrays)
        proc = ip(images=[np.array(a) for a in arrays], return_tensors="pt")
        return proc["pixel_values"], proc["image_grid_thw"]

    def _patchify(self, arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        ip, p, m, t = self.image_processor, self.patch_size, self.merge, self.temporal_patch
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() * float(ip.rescale_factor)
        mean = torch.tensor(ip.image_mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(ip.image_std, dtype=torch.float32).view(1, -1, 1, 1)
        x = (x - mean) / std
        b, c, h, w = x.shape
        gh, gw = h // p, w // p
        x = x.reshape(b, c, gh // m, m, p, gw // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, t, -1, -1).reshape(b * gh * gw, c * t * p * p)
        grid = torch.tensor([[1, gh, gw]] * b, dtype=torch.long)
        return x.contiguous(), grid

    def encode_items(self, items: list[Item], with_copy: bool = False) -> Batch:
        """Lay out ``items`` as one padded batch; ``with_copy`` appends the stage-2 reconstruction copy."""
        if not items:
            raise ValueError("cannot encode an empty list of items")
        images = [it.image for it in items if it.image is not None]
        pixel_values = grid = targets = None
        tokens_per_image: list[int] = []
        if images:
            pixel_values, grid = self.pixels(images)
            tokens_per_image = [int(g.prod()) // (self.merge * self.merge) for g in grid]
            targets = image_patch_targets(
                pixel_values, self.merge, self.channels, self.temporal_patch, self.patch_size, self.patch_pool
            )
        rows, image_iter = [], iter(tokens_per_image)
        for idx, it in enumerate(items):
            text = self._text_ids(it.text) if it.text else []
            if it.image is None and not text:
                raise ValueError(f"item {idx} has neither an image nor any text")
            n_img = next(image_iter) if it.image is not None else 0
            ids, kind = [], []  # kind: 0 structural, 1 image, 2 text, 3 copy text, 4 copy slot
            if n_img:
                ids += [self.vision_start_id] + [self.image_token_id] * n_img + [self.vision_end_id]
                kind += [0] + [1] * n_img + [0]
            ids += text + [self.eos_id]
            kind += [2] * len(text) + [0]
            n_in = len(ids)
            if with_copy:
                ids += text + [self.pad_id] * n_img
                kind += [3] * len(text) + [4] * n_img
            rows.append((ids, kind, n_in))
        length = max(len(r[0]) for r in rows)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        kinds = torch.full((len(rows), length), -1, dtype=torch.long)
        for b, (ids, kind, _) in enumerate(rows):
            input_ids[b, : len(ids)] = torch.tensor(ids)
            kinds[b, : len(kind)] = torch.tensor(kind)
        n_in = torch.tensor([r[2] for r in rows])
        n_copy = torch.tensor([len(r[0]) - r[2] for r in rows])
        return Batch(
            input_ids=input_ids,
            n_in=n_in,
            n_copy=n_copy,
            image_token=kinds == 1,
            text_token=kinds == 2,
            copy_text=kinds == 3,
            copy_slot=kinds == 4,
            pixel_values=pixel_values,
            image_grid_thw=grid,
            patch_targets=targets,
        )

    # ----------------------------------------------------------------------------------------------- forward
    @property
    def device(self) -> torch.device:
        return self.mask_embedding.device

    @property
    def core(self) -> nn.Module:
        """The plain ``...ForConditionalGeneration`` module (LoRA adapters are injected in place, so they stay on)."""
        return self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") else self.backbone

    def position_ids(self, batch: Batch) -> torch.Tensor:
        """Multimodal RoPE positions (3, B, L) from ``get_rope_index``; copy tokens continue after <EOS>."""
        input_ids = batch.input_ids.to(self.device)
        length = input_ids.shape[1]
        valid = torch.arange(length, device=self.device)[None] < (batch.n_in + batch.n_copy).to(self.device)[:, None]
        token_type = batch.image_token.to(self.device).int()
        grid = batch.image_grid_thw.to(self.device) if batch.image_grid_thw is not None else None
        if grid is None:
            pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
            return pos[None].expand(3, -1, -1)
        pos, _ = self.core.model.get_rope_index(
            input_ids, mm_token_type_ids=token_type, image_grid_thw=grid, attention_mask=valid.long()
        )
        return pos

    def input_embeddings(self, batch: Batch, masked_image: torch.Tensor | None = None, input_ids=None) -> torch.Tensor:
        """Token embeddings with image features scattered in; ``masked_image`` (B, L) positions and every copy slot
        get the learned mask embedding instead."""
        ids = (batch.input_ids if input_ids is None else input_ids).to(self.device)
        embeds = self.core.get_input_embeddings()(ids)
        if batch.pixel_values is not None:
            pv = batch.pixel_values.to(self.device, self.core.dtype)
            feats = self.core.model.get_image_features(pv, batch.image_grid_thw.to(self.device))
            feats = torch.cat(list(feats.pooler_output), dim=0).to(embeds.dtype)
            where = batch.image_token.to(self.device)
            if int(where.sum()) != feats.shape[0]:
                raise ValueError(f"{int(where.sum())} image token slots but {feats.shape[0]} image features")
            embeds = embeds.masked_scatter(where.unsqueeze(-1), feats)
        replace = batch.copy_slot.to(self.device)
        if masked_image is not None:
            replace = replace | masked_image.to(self.device)
        if replace.any():
            embeds = torch.where(replace.unsqueeze(-1), self.mask_embedding.to(embeds.dtype), embeds)
        return embeds

    def hidden_states(
        self,
        batch: Batch,
        masked_image: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-layer hidden states (B, L, H) under this model's input attention and the batch's copy layout.

        ``inputs_embeds`` (from ``input_embeddings``) may be passed to take gradients with respect to them."""
        embeds = self.input_embeddings(batch, masked_image, input_ids) if inputs_embeds is None else inputs_embeds
        mask = attention_mask(
            batch.n_in, embeds.shape[1], self.input_attention, n_copy=batch.n_copy, dtype=embeds.dtype
        ).to(self.device)
        out = self.core.model.language_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=self.position_ids(batch), use_cache=False
        )
        return out.last_hidden_state

    def eos_states(self, batch: Batch, hidden: torch.Tensor) -> torch.Tensor:
        """The (B, H) hidden states at each sequence's <EOS> (its last input token)."""
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, (batch.n_in - 1).to(hidden.device)]

    def embed(self, batch: Batch) -> torch.Tensor:
        """L2-normalised <EOS> embeddings (B, H) of a batch laid out without a copy."""
        if int(batch.n_copy.sum()):
            raise ValueError("embed() expects a batch without a reconstruction copy")
        return F.normalize(self.eos_states(batch, self.hidden_states(batch)).float(), dim=-1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.core.lm_head(hidden)

    # ----------------------------------------------------------------------------------------------- saving
    def save(self, out_dir: str | Path) -> Path:
        """Write backbone, tokenizer, image processor, heads and layout settings into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out)
        if self.processor is not None:
            self.processor.save_pretrained(out)
        else:
            self.tokenizer.save_pretrained(out)
            self.image_processor.save_pretrained(out)
        heads = {"patch_head": self.patch_head.state_dict(), "mask_embedding": self.mask_embedding.detach().cpu()}
        tmp = out / (HEADS_FILE + ".tmp")
        torch.save(heads, tmp)
        tmp.replace(out / HEADS_FILE)
        settings = {
            "input_attention": self.input_attention,
            "max_text_tokens": self.max_text_tokens,
            "patch_pool": self.patch_pool,
        }
        (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))
        return out

    def load_heads(self, model_dir: str | Path) -> None:
        """Restore the patch head and mask embedding saved by ``save`` (absent for a plain backbone)."""
        path = Path(model_dir) / HEADS_FILE
        if not path.exists():
            return
        heads = torch.load(path, map_location="cpu", weights_only=True)
        self.patch_head.load_state_dict(heads["patch_head"])
        with torch.no_grad():
            self.mask_embedding.copy_(heads["mask_embedding"])
