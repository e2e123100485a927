"""Key-value editing of a generative retriever's decoder FFNs: DOME and the off-the-shelf MEMIT-style baseline.

Keys are the inputs of each chosen decoder layer's FFN down-projection (`wo`) at the docID positions of
teacher-forced (query, docID) pairs. For a batch of new documents:
1. edit vectors δ (one per query and docID position) are added to the last chosen layer's FFN output and optimised
   so the model emits the new docIDs — DOME with the hybrid-label loss, MEMIT with hard labels only; ‖δ‖ is clamped
   to `clamp_norm` times the hidden state's norm at that position;
2. the target hidden states z = h + δ are written into the weights layer by layer (MEMIT's spread: each layer takes
   an equal share of the remaining residual), by the closed form of `dome.closed_form` — plain with the preserved
   keys' covariance C0 weighted by λ (default, as MEMIT) or null-space projected (AlphaEdit-like);
3. with `update_cov`, the batch's keys join the preserved statistics, so the next batch does not overwrite it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from dome.closed_form import null_space_basis, null_space_update, plain_update
from dome.config import EditConfig
from dome.gr import Example, GenerativeRetriever
from dome.losses import hybrid_label_loss, soft_targets
from dome.tracing import decoder_ffns


class KeyValueEditor:
    """Holds the preserved-key statistics of the chosen layers and applies batch edits."""

    def __init__(self, gr: GenerativeRetriever, cfg: EditConfig, layers: list[int], batch_size: int = 64) -> None:
        self.gr = gr
        self.cfg = cfg
        self.ffns = decoder_ffns(gr.model)
        bad = [layer for layer in layers if not 0 <= layer < len(self.ffns)]
        if not layers or bad:
            raise ValueError(f"edit layers {layers} must be non-empty indices of the {len(self.ffns)} decoder layers")
        if cfg.update not in ("null_space", "plain"):
            raise ValueError(f"edit.update must be 'null_space' or 'plain', got {cfg.update!r}")
        if cfg.loss not in ("hybrid", "hard"):
            raise ValueError(f"edit.loss must be 'hybrid' or 'hard', got {cfg.loss!r}")
        self.layers = sorted(layers)
        self.batch_size = batch_size
        d_ff = self.ffns[0].wo.weight.shape[1]
        self.cov_sum = {layer: torch.zeros(d_ff, d_ff, dtype=torch.float64) for layer in self.layers}
        self.cov_count = 0
        self.prev_keys: dict[int, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        self._basis: dict[int, torch.Tensor] = {}

    # ---- statistics -------------------------------------------------------------------------------------------
    @contextmanager
    def _capture(self, layers: list[int]):
        store: dict[int, torch.Tensor] = {}
        hooks = [
            self.ffns[layer].wo.register_forward_pre_hook(lambda _m, args, layer=layer: store.__setitem__(layer, args[0]))
            for layer in layers
        ]
        try:
            yield store
        finally:
            for h in hooks:
                h.remove()

    @torch.no_grad()
    def keys(self, examples: list[Example], layers: list[int]) -> dict[int, torch.Tensor]:
        """Keys (n_positions, d_ff) per layer for teacher-forced examples, docID positions only (EOS included)."""
        out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
        for i in range(0, len(examples), self.batch_size):
            chunk = examples[i : i + self.batch_size]
            enc = self._encoded(chunk)
            dec, _, mask = self.gr.decoder_tensors([e.docid for e in chunk])
            with self._capture(layers) as store:
                self.gr.model(**enc, decoder_input_ids=dec)
            for layer in layers:
                out[layer].append(store[layer][mask.bool()].double())
        return {layer: torch.cat(v) for layer, v in out.items()}

    def add_preserved(self, examples: list[Example]) -> None:
        """Accumulate C0 = E[k kᵀ] over (query, docID) pairs of the indexed collection."""
        keys = self.keys(examples, self.layers)
        for layer, k in keys.items():
            self.cov_sum[layer] += k.T @ k
        self.cov_count += int(keys[self.layers[0]].shape[0])
        self._basis.clear()
        if self.cfg.update == "null_space":
            for layer in self.layers:  # part of the one-off preparation, not of each edit
                self.basis(layer)

    def _mean_cov(self, layer: int) -> torch.Tensor:
        if self.cov_count == 0:
            raise RuntimeError("editor has no preserved-key statistics; call add_preserved on the indexed collection")
        return self.cov_sum[layer] / self.cov_count

    def basis(self, layer: int) -> torch.Tensor:
        if layer not in self._basis:
            self._basis[layer] = null_space_basis(self._mean_cov(layer), self.cfg.null_energy)
        return self._basis[layer]

    @torch.no_grad()
    def _encoded(self, examples: list[Example]) -> dict:
        """Encoder states computed once: edits change decoder weights only, so they stay valid."""
        enc = self.gr.encode([e.text for e in examples])
        states = self.gr.model.get_encoder()(**enc).last_hidden_state
        return {"encoder_outputs": (states,), "attention_mask": enc["attention_mask"]}

    # ---- the edit ---------------------------------------------------------------------------------------------
    def _block_out(self, layer: int):
        return self.gr.model.get_decoder().block[layer]

    def _upper_forward(self, enc: dict, dec: torch.Tensor, last: int):
        """Run the model once (no grad) and return (h0, logits, f): h0 = decoder block `last`'s output and f(z) the
        logits computed from a replacement z of h0 through the blocks above `last` only.

        The edit-vector loop then re-runs only those blocks and the LM head (their other inputs — masks, position
        biases, encoder states — are captured from this run and do not depend on z), not the whole decoder.
        """
        decoder = self.gr.model.get_decoder()
        upper = list(decoder.block)[last + 1 :]
        captured: dict = {"inputs": []}
        hooks = [self._block_out(last).register_forward_hook(lambda _m, _i, o: captured.__setitem__("h", o[0]))]
        hooks += [
            b.register_forward_pre_hook(lambda _m, a, kw: captured["inputs"].append((a[1:], kw)), with_kwargs=True)
            for b in upper
        ]
        try:
            with torch.no_grad():
                base = self.gr.model(**enc, decoder_input_ids=dec, use_cache=False).logits
        finally:
            for h in hooks:
                h.remove()
        model = self.gr.model
        scale = getattr(model.config, "scale_decoder_outputs", getattr(model.config, "tie_word_embeddings", False))

        def logits_of(z: torch.Tensor) -> torch.Tensor:
            h = z
            for block, (args, kwargs) in zip(upper, captured["inputs"]):
                h = block(h, *args, **kwargs)[0]
            h = decoder.dropout(decoder.final_layer_norm(h))
            if scale:
                h = h * (model.config.d_model**-0.5)
            return model.lm_head(h)

        return captured["h"].detach(), base, logits_of

    def optimise_targets(self, examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Edit vectors at the last chosen layer; returns (target hidden states z (n, T, d), mask (n, T), log)."""
        gr, cfg, last = self.gr, self.cfg, self.layers[-1]
        enc = self._encoded(examples)
        dec, labels, mask = gr.decoder_tensors([e.docid for e in examples])
        gr.model.eval()
        h0, base, logits_of = self._upper_forward(enc, dec, last)
        soft = None
        if cfg.loss == "hybrid":
            allowed = torch.zeros(base.shape[-1], dtype=torch.bool)
            allowed[gr.symbol_ids + [gr.eos_id]] = True
            soft = soft_targets(base, labels, allowed, cfg.soft_temperature, cfg.soft_hard_weight)
        delta = torch.zeros_like(h0, requires_grad=True)
        max_norm = cfg.clamp_norm * h0.norm(dim=-1, keepdim=True)
        opt = torch.optim.Adam([delta], lr=cfg.lr)
        log: dict = {}
        for step in range(cfg.steps):
            logits = logits_of(h0 + delta * mask.unsqueeze(-1))
            parts = hybrid_label_loss(logits, labels, soft, delta, cfg.soft_lambda, cfg.mu, mask)
            log = {k: v.item() for k, v in parts.items()} | {"steps": step}
            # early stop on the loss of the current δ: the docIDs are already fitted, more steps only add time
            if cfg.stop_loss > 0 and log["hard"] <= cfg.stop_loss:
                break
            opt.zero_grad()
            parts["loss"].backward()
            opt.step()
            with torch.no_grad():
                norm = delta.norm(dim=-1, keepdim=True)
                delta.mul_(torch.clamp(max_norm / norm.clamp_min(1e-12), max=1.0))
            log["steps"] = step + 1
        return (h0 + delta.detach() * mask.unsqueeze(-1)), mask, log

    @torch.no_grad()
    def _current_last(self, examples: list[Example]) -> torch.Tensor:
        captured: dict[str, torch.Tensor] = {}
        grab = self._block_out(self.layers[-1]).register_forward_hook(lambda _m, _i, o: captured.__setitem__("h", o[0]))
        try:
            enc = self._encoded(examples)
            dec, _, _ = self.gr.decoder_tensors([e.docid for e in examples])
            self.gr.model(**enc, decoder_input_ids=dec)
        finally:
            grab.remove()
        return captured["h"]

    def reset_edits(self) -> None:
        """Forget the keys of earlier edits (the preserved statistics of the indexed collection stay)."""
        self.prev_keys = {layer: [] for layer in self.layers}

    def edit(self, examples: list[Example], targets: tuple[torch.Tensor, torch.Tensor, dict] | None = None) -> dict:
        """Write a batch of (query, new docID) pairs into the chosen layers; returns timings and losses.

        `targets` = an earlier `optimise_targets(examples)` on the same weights: the edit vectors do not depend on the
        C0 weight λ, so a λ grid optimises them once (the caller then adds that time to each λ's own).
        """
        if not examples:
            raise ValueError("edit: empty batch")
        t0 = time.perf_counter()
        z, mask, log = targets if targets is not None else self.optimise_targets(examples)
        log = dict(log)
        sel = mask.bool()
        new_keys: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            keys = self.keys(examples, [layer])[layer]  # recomputed after the lower layers' updates
            resid = (z - self._current_last(examples))[sel].double() / (len(self.layers) - i)
            w = self.ffns[layer].wo.weight
            targets_v = w.double() @ keys.T + resid.T
            prev = torch.cat(self.prev_keys[layer]).T if self.prev_keys[layer] else None
            with torch.no_grad():
                if self.cfg.update == "null_space":
                    dw = null_space_update(w.detach(), keys.T, targets_v, self.basis(layer), prev, self.cfg.alpha)
                else:
                    cov = self._mean_cov(layer)
                    if prev is not None:
                        cov = cov + prev @ prev.T / self.cfg.cov_weight
                    dw = plain_update(w.detach(), keys.T, targets_v, cov, self.cfg.cov_weight, self.cfg.alpha)
                w.add_(dw.to(w.dtype))
            new_keys[layer] = keys
        if self.cfg.update_cov:
            for layer, k in new_keys.items():
                self.prev_keys[layer].append(k)
        log["seconds"] = time.perf_counter() - t0
        log["keys"] = int(sel.sum())
        log["examples"] = len(examples)
        return log
