"""The generative retriever: a T5 model + tokenizer + docID scheme + trie; building, training, retrieval, save/load.

DocID symbols are dedicated added tokens, so the decoder target of a document is [its symbol tokens..., EOS].
Training is DSI-style multitask: indexing examples (document text -> docID) and retrieval examples (query ->
docID), teacher-forced cross-entropy, AdamW with warmup and linear decay, dropout set to 0 (a tiny model trained
from scratch on a few hundred documents learns far faster without it).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from dome.docids import DocIdScheme
from dome.trie import DocIdTrie, constrained_beam_search


class VocabularyError(ValueError):
    """The model's vocabulary cannot express some docID symbols."""


@dataclass
class Example:
    text: str
    docid: tuple[int, ...]


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off everywhere: nn.Dropout modules and the attention-probability dropout that T5 attention keeps as
    a float read from the config (it stays active in train mode otherwise, and makes training non-deterministic)."""
    if hasattr(model.config, "dropout_rate"):
        model.config.dropout_rate = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        elif isinstance(getattr(m, "dropout", None), float):
            m.dropout = 0.0


class GenerativeRetriever:
    """A seq2seq model that maps text to docIDs, constrained by a trie over the collection's docIDs."""

    def __init__(self, model, tokenizer, scheme: DocIdScheme, max_input_tokens: int = 48, source: str = "") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.scheme = scheme
        self.max_input_tokens = max_input_tokens
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        self._symbol_ids = self._resolve_symbols(source)
        self.trie = DocIdTrie([self.docid_tokens(d) for d in scheme.ids.values()], eos_id=self.eos_id)
        disable_dropout(model)

    def _resolve_symbols(self, source: str) -> list[int]:
        names = self.scheme.symbol_tokens()
        ids = self.tokenizer.convert_tokens_to_ids(names)
        vocab = self.model.get_input_embeddings().weight.shape[0]
        unk = self.tokenizer.unk_token_id
        bad = [n for n, i in zip(names, ids) if i is None or i == unk or i >= vocab]
        if bad:
            raise VocabularyError(
                f"{source or 'model'}: vocabulary cannot express docID symbols {bad[:5]} "
                f"({len(bad)} missing of {len(names)}); train the model with this docID scheme or add the tokens"
            )
        # tokens reserved beyond the current docIDs (for documents added later) follow on consecutively
        prefix = names[0].rsplit("_", 1)[0] + "_" if names else ("<doc_" if self.scheme.kind == "atomic" else "<id_")
        ids = list(ids)
        while True:
            nxt = self.tokenizer.convert_tokens_to_ids(f"{prefix}{len(ids)}>")
            if nxt is None or nxt == unk or nxt >= vocab:
                return ids
            ids.append(nxt)

    @property
    def symbol_ids(self) -> list[int]:
        """Token id of each docID symbol (index = symbol), including those reserved for later documents."""
        return list(self._symbol_ids)

    def docid_tokens(self, docid: tuple[int, ...]) -> list[int]:
        if max(docid) >= len(self._symbol_ids):
            raise VocabularyError(f"docID {docid} uses symbol {max(docid)} beyond the model's {len(self._symbol_ids)}")
        return [self._symbol_ids[s] for s in docid]

    def add_documents(self, doc_ids: list[str], embeddings=None) -> dict[str, tuple[int, ...]]:
        """Give new documents docIDs and make them decodable (the model must already hold their symbol tokens)."""
        new = self.scheme.add(doc_ids, embeddings)
        needed = self.scheme.symbol_tokens()
        if len(needed) > len(self._symbol_ids):
            missing = needed[len(self._symbol_ids) :]
            for d in doc_ids:
                del self.scheme.ids[d]
            raise VocabularyError(f"new docIDs need symbols {missing[:5]} that the model's vocabulary does not have")
        for d in new.values():
            self.trie.add(self.docid_tokens(d))
        return new

    def restore(self, state: dict[str, torch.Tensor], scheme: dict) -> None:
        """Back to saved weights and docID assignments (the trie is rebuilt to match)."""
        self.model.load_state_dict(state)
        self.scheme = DocIdScheme.from_dict(scheme)
        self.trie = DocIdTrie([self.docid_tokens(d) for d in self.scheme.ids.values()], eos_id=self.eos_id)

    # ---- tensors -------------------------------------------------------------------------------------------
    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_input_tokens
        )

    def decoder_tensors(self, docids: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(decoder_input_ids, labels, label_mask) for teacher forcing; labels end with EOS, pad positions masked."""
        seqs = [self.docid_tokens(d) + [self.eos_id] for d in docids]
        width = max(len(s) for s in seqs)
        start = self.model.config.decoder_start_token_id
        labels = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width))
        dec = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            labels[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1.0
            dec[i, 0] = start
            dec[i, 1 : len(s)] = torch.tensor(s[:-1])
        return dec, labels, mask

    def loss(self, batch: list[Example]) -> torch.Tensor:
        enc = self.encode([e.text for e in batch])
        dec, labels, mask = self.decoder_tensors([e.docid for e in batch])
        logits = self.model(**enc, decoder_input_ids=dec).logits
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
        return (nll * mask).sum() / mask.sum()

    # ---- retrieval ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def retrieve(self, texts: list[str], k: int = 10, batch_size: int = 64) -> list[list[tuple[str, float]]]:
        """Ranked (document id, log-prob) lists, only documents of the collection, best first."""
        self.model.eval()
        by_tokens = {tuple(self.docid_tokens(d)): doc for doc, d in self.scheme.ids.items()}
        out: list[list[tuple[str, float]]] = []
        for i in range(0, len(texts), batch_size):
            enc = self.encode(texts[i : i + batch_size])
            hits = constrained_beam_search(self.model, enc["input_ids"], enc["attention_mask"], self.trie, k)
            out += [[(by_tokens[s], sc) for s, sc in h] for h in hits]
        return out

    # ---- persistence ----------------------------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)
        tmp = out_dir / "docids.json.tmp"
        payload = {"max_input_tokens": self.max_input_tokens, "scheme": self.scheme.to_dict()}
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(out_dir / "docids.json")
        return out_dir

    @classmethod
    def load(cls, path: str | Path) -> GenerativeRetriever:
        from shared.modeling import load_model

        path = Path(path)
        meta = path / "docids.json"
        if not meta.is_file():
            raise FileNotFoundError(f"{path}: no docids.json; is this a model saved by `dome train`?")
        data = json.loads(meta.read_text(encoding="utf-8"))
        model, tok = load_model(str(path), kind="seq2seq", dtype="float32", device="cpu")
        return cls(model, tok, DocIdScheme.from_dict(data["scheme"]), data["max_input_tokens"], source=str(path))


class CheckpointError(ValueError):
    """A training checkpoint that cannot be resumed (missing, unreadable, or from a different run)."""


def _save_checkpoint(path: Path, payload: dict) -> None:
    """Atomic write: a crash mid-save leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, run: dict) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which one
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from e
    for key, value in run.items():
        if state.get("run", {}).get(key) != value:
            raise CheckpointError(
                f"{path}: field {key!r} is {state.get('run', {}).get(key)!r} in the checkpoint but {value!r} in this "
                "run; resume with the same config or start without --resume"
            )
    return state


def train(
    gr: GenerativeRetriever,
    examples: list[Example],
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int = 0,
    seed: int = 0,
    replay: list[Example] | None = None,
    replay_ratio: float = 0.0,
    desc: str = "train",
    optimizer: torch.optim.Optimizer | None = None,
    decay: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
) -> dict:
    """Teacher-forced training for `steps` steps; with `replay`, each batch mixes in old examples at `replay_ratio`.

    The learning rate warms up over `warmup` steps, then decays linearly (or stays constant with decay=False, for
    training resumed in chunks with the returned optimizer). With `checkpoint` and `checkpoint_every` > 0, the
    model, optimizer, schedule, sampling RNG and losses are saved atomically every `checkpoint_every` steps and at
    the end; `resume` continues from that file, giving the same parameters as an uninterrupted run.
    """
    if not examples:
        raise ValueError("train: no training examples")
    if steps < 0 or batch_size < 1:
        raise ValueError(f"train: need steps >= 0 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    model = gr.model
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def factor(s: int) -> float:
        ramp = min(1.0, (s + 1) / max(1, warmup))
        return ramp * (max(0.05, 1.0 - s / max(1, steps)) if decay else 1.0)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    rng = random.Random(seed)
    losses: list[float] = []
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    run = {"steps": steps, "batch_size": batch_size, "lr": lr, "warmup": warmup, "seed": seed,
           "examples": len(examples)}
    if resume:
        if ckpt is None:
            raise CheckpointError("train: resume needs a checkpoint path")
        state = _load_checkpoint(ckpt, run)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.setstate(state["rng"])
        losses, start = list(state["losses"]), int(state["step"])

    def save(step: int) -> None:
        _save_checkpoint(ckpt, {
            "run": run, "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "rng": rng.getstate(), "losses": losses,
        })

    n_replay = int(round(batch_size * replay_ratio)) if replay else 0
    model.train()
    t0 = time.perf_counter()
    for step in tqdm(range(start, steps), desc=desc, leave=False, mininterval=2.0, initial=start, total=steps):
        batch = rng.sample(examples, min(batch_size - n_replay, len(examples)))
        if n_replay:
            batch += rng.sample(replay, min(n_replay, len(replay)))
        loss = gr.loss(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if ckpt is not None and checkpoint_every > 0 and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            save(step + 1)
    model.eval()
    return {"losses": losses, "seconds": time.perf_counter() - t0, "optimizer": opt, "resumed_from": start}
