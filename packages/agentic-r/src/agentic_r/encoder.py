"""The retriever's encoder for training and indexing, with the frozen lower layers cached per text.

The paper fine-tunes the whole e5-base-v2. On two loaded CPU cores a full MiniLM pass runs at ~10 texts/s, so the
CPU replication trains only the top `train_layers` transformer layers of a BERT-style encoder (MiniLM has 6) and
caches, per prefixed text, the hidden states entering the first trained layer: every text crosses the frozen
layers once per run, whichever encoder (base, round 0, round 1) later reads it. `train_layers: all` (the paper's
setting, for GPUs) trains every weight and uses the plain `TextEncoder.forward_embeddings` path.

`LayerCachedEncoder` is a `shared.retrieval.TextEncoder`, so `Retriever`, `DenseIndex` and the search service use
it unchanged, and `save` writes a complete model folder that `TextEncoder.load` restores.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from shared.retrieval import TextEncoder, pool_hidden_states
from tqdm.auto import tqdm


class EncoderSetupError(ValueError):
    """The encoder cannot be split for top-layer training (not BERT-style, bad layer count, stale cache)."""


def _layers(model: torch.nn.Module):
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None or not isinstance(layers, torch.nn.ModuleList):
        raise EncoderSetupError(
            f"{type(model).__name__} has no encoder.layer list (BERT-style); use train_layers=all for this model"
        )
    return layers


def frozen_fingerprint(model: torch.nn.Module, first_trained: int) -> str:
    """Hash of the frozen weights (embeddings and the layers below `first_trained`), to key the state cache."""
    digest = hashlib.sha256()
    layers = _layers(model)
    modules = [model.embeddings, *layers[:first_trained]]
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class StateCache:
    """Per-text hidden states entering the first trained layer, kept in memory and saved to one file."""

    def __init__(self, path: str | os.PathLike | None, fingerprint: str) -> None:
        self.path = Path(path) if path is not None else None
        self.fingerprint = fingerprint
        self.states: dict[str, torch.Tensor] = {}
        self.dirty = False
        if self.path is not None and self.path.exists():
            saved = torch.load(self.path, weights_only=True)
            if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
                raise EncoderSetupError(
                    f"{self.path}: state cache was built for other frozen weights; delete it to rebuild"
                )
            self.states = dict(saved["states"])

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"fingerprint": self.fingerprint, "states": self.states}, tmp)
        os.replace(tmp, self.path)
        self.dirty = False


class LayerCachedEncoder(TextEncoder):
    """TextEncoder training its top `train_layers` layers on cached lower-layer states (see module docstring)."""

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        train_layers: int | str = 1,
        cache_path: str | os.PathLike | None = None,
        cache: StateCache | None = None,
        **kwargs,
    ) -> None:
        super().__init__(model_name_or_path, **kwargs)
        if self.pooling != "mean":
            raise EncoderSetupError(f"Agentic-R trains with mean pooling, got pooling={self.pooling!r}")
        self.full = train_layers == "all"
        if self.full:
            self.first_trained = 0
            self.cache = None
            return
        layers = _layers(self.model)
        if not isinstance(train_layers, int) or not 1 <= train_layers <= len(layers):
            raise EncoderSetupError(f"train_layers must be 'all' or an int in 1..{len(layers)}, got {train_layers!r}")
        self.first_trained = len(layers) - train_layers
        fingerprint = frozen_fingerprint(self.model, self.first_trained)
        if cache is not None and cache.fingerprint != fingerprint:
            raise EncoderSetupError("the shared state cache belongs to an encoder with other frozen weights")
        self.cache = cache if cache is not None else StateCache(cache_path, fingerprint)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        if self.full:
            return list(self.model.parameters())
        return [p for layer in _layers(self.model)[self.first_trained :] for p in layer.parameters()]

    def _fill_cache(self, texts: Sequence[str], progress: bool) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache.states))
        if not missing:
            return
        was_training = self.model.training
        self.model.eval()
        starts = range(0, len(missing), self.batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="encoding (frozen layers)", unit="batch", disable=not progress):
                chunk = missing[start : start + self.batch_size]
                batch = self.tokenize(chunk)
                inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                out = self.model(**inputs, output_hidden_states=True)
                hidden = out.hidden_states[self.first_trained]
                lengths = batch["attention_mask"].sum(dim=1).tolist()
                for text, row, n in zip(chunk, hidden, lengths):
                    self.cache.states[text] = row[: int(n)].float().cpu().clone()
        self.cache.dirty = True
        self.model.train(was_training)

    def _top_forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Pooled (normalised) embeddings from cached states through the trained layers, with gradients."""
        from transformers.masking_utils import create_bidirectional_mask

        rows = [self.cache.states[t] for t in texts]
        width = max(r.shape[0] for r in rows)
        dim = rows[0].shape[1]
        hidden = torch.zeros(len(rows), width, dim, device=self.device)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, r in enumerate(rows):
            hidden[i, : r.shape[0]] = r.to(self.device)
            mask[i, : r.shape[0]] = 1
        attn = create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in _layers(self.model)[self.first_trained :]:
            out = layer(hidden, attn)
            hidden = out[0] if isinstance(out, tuple) else out
        pooled = pool_hidden_states(hidden, mask, self.pooling)
        return torch.nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    def train_embeddings(self, texts: Sequence[str], prefix: str) -> torch.Tensor:
        """Embeddings with gradients for a training batch (prefix applied here)."""
        prefixed = [prefix + t for t in texts]
        if self.full:
            return self.forward_embeddings(self.tokenize(prefixed))
        self._fill_cache(prefixed, progress=False)
        return self._top_forward(prefixed)

    def embed(self, texts: Sequence[str], prefix: str = "", progress: bool = False) -> np.ndarray:
        if self.full:
            return super().embed(texts, prefix, progress)
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        prefixed = [prefix + t for t in texts]
        if not prefixed:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._fill_cache(prefixed, progress)
        was_training = self.model.training
        self.model.eval()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(prefixed), self.batch_size):
                chunks.append(self._top_forward(prefixed[start : start + self.batch_size]).float().cpu().numpy())
        self.model.train(was_training)
        return np.concatenate(chunks).astype(np.float32, copy=False)


def load_encoder(
    path: str | os.PathLike | None,
    train_layers: int | str,
    cache: StateCache | None,
    cache_path: str | os.PathLike | None = None,
    query_prefix: str = "query: ",
    passage_prefix: str = "passage: ",
    max_length: int = 128,
    batch_size: int = 64,
) -> LayerCachedEncoder:
    """The encoder at `path` (None: the offline MiniLM) with Agentic-R's mean pooling, prefixes and normalisation."""
    return LayerCachedEncoder(
        path,
        train_layers=train_layers,
        cache=cache,
        cache_path=cache_path,
        pooling="mean",
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        normalize=True,
        max_length=max_length,
        batch_size=batch_size,
        device="cpu" if not torch.cuda.is_available() else "auto",
    )
