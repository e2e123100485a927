"""Causal tracing over the decoder FFN layers of a T5 generative retriever (ROME-style, adapted to seq2seq).

For queries and their (teacher-forced) docIDs: a clean run records every decoder layer's FFN output; a corrupted run
adds Gaussian noise to the encoder states (scale = `noise` × their std); then, one layer at a time, the corrupted run
is repeated with that layer's FFN output restored to its clean value. The indirect effect of layer l is
P_restored(l)(docID) − P_corrupted(docID), averaged over queries and noise samples; DOME edits the top layers.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def decoder_ffns(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The FFN (DenseReluDense) module of each decoder block of a T5 model."""
    try:
        return [block.layer[-1].DenseReluDense for block in model.get_decoder().block]
    except AttributeError as e:
        raise ValueError(f"causal tracing needs a T5-style decoder with DenseReluDense FFNs ({e})") from e


@contextmanager
def _replace_output(module: torch.nn.Module, value: torch.Tensor):
    handle = module.register_forward_hook(lambda _m, _i, _o: value)
    try:
        yield
    finally:
        handle.remove()


def _docid_prob(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1).exp()


@torch.no_grad()
def trace_decoder_layers(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    decoder_input_ids: torch.Tensor,
    labels: torch.Tensor,
    label_mask: torch.Tensor,
    noise: float = 3.0,
    samples: int = 3,
    seed: int = 0,
) -> dict:
    """Per-layer indirect effect of restoring each decoder FFN output; returns effects and clean/corrupt P(docID)."""
    ffns = decoder_ffns(model)
    clean_out: list[torch.Tensor] = []
    hooks = [f.register_forward_hook(lambda _m, _i, o: clean_out.append(o.detach())) for f in ffns]
    try:
        enc = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        clean = model(encoder_outputs=(enc,), attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    finally:
        for h in hooks:
            h.remove()
    p_clean = _docid_prob(clean.logits, labels, label_mask)
    scale = noise * float(enc[attention_mask.bool()].std())
    gen = torch.Generator().manual_seed(seed)
    corrupt_total = torch.zeros_like(p_clean)
    restored_total = torch.zeros(len(ffns), *p_clean.shape)
    for _ in range(samples):
        noisy = enc + scale * torch.randn(enc.shape, generator=gen, dtype=enc.dtype)

        def run(noisy=noisy) -> torch.Tensor:
            out = model(encoder_outputs=(noisy,), attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
            return _docid_prob(out.logits, labels, label_mask)

        corrupt_total += run()
        for layer, ffn in enumerate(ffns):
            with _replace_output(ffn, clean_out[layer]):
                restored_total[layer] += run()
    p_corrupt = corrupt_total / samples
    effects = (restored_total / samples - p_corrupt).mean(-1)
    return {
        "effects": [float(e) for e in effects],
        "p_clean": float(p_clean.mean()),
        "p_corrupt": float(p_corrupt.mean()),
    }


def critical_layers(effects: list[float], top: int) -> list[int]:
    """Indices of the `top` layers with the largest indirect effect, in ascending layer order."""
    if top < 1 or top > len(effects):
        raise ValueError(f"critical_layers: top must be in [1, {len(effects)}], got {top}")
    order = sorted(range(len(effects)), key=lambda i: -effects[i])
    return sorted(order[:top])
