"""HF transformers generation backend: batched, left-padded, KV-cached decoding with exact per-token logprobs.

An own decoding loop rather than ``model.generate``: it returns, per generated token, the log-probability under
softmax(logits / temperature) of the raw logits (what RL ratios need, independent of top-k/top-p filtering), the
top-k alternatives per position (tree rollouts branch on them), the exact entropy of softmax(logits / T) per
position when asked (``SamplingParams.entropy``), and cuts at stop strings at the exact token that completes them
(found incrementally: only a short tail of each row is decoded per token, see ``_StopScanner``). Rows are
independent (own position ids under left padding), so a prompt's continuation does not depend on its batch mates (up
to float rounding in the matrix kernels, see ``HFGenerator.min_running_rows``). Work is done only where it counts:
finished rows leave the running batch (their KV-cache rows dropped), the n samples of a prompt share one prefill
(its cache rows copied), and the log-softmax (entropies) is taken only when log-probs or top log-probs (entropies)
are asked for. On CPU with one torch thread (the project's setting) none of this changes an output bit (seeded
draws: see ``_sample``; matrix kernels: ``HFGenerator.min_running_rows``); the equivalence tests keep the old loop
as their reference. On CUDA this is not checked (no GPU in the tests): cuBLAS may pick other kernels as the batch
shrinks, so log-probs may differ from the old loop in the last bits there (the old loop's already depended on the
batch size in the same way), and a near-tie could then flip a token. tools/bench measures the loop against
``generate`` and the old loop.

Device: every tensor is made on the model's device; on CUDA a float32 model decodes under bf16 autocast
(``autocast=None``, the default, decides so; the RL trainer passes its own choice so that rollouts and its
training forwards run at the same precision, which its log-prob-gap metric checks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from shared.generation.base import Completion, Prompts, SamplingParams, check_prompts, cut_at_stop


def filter_logits(scaled: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) logits outside the top-k and outside the smallest top-p nucleus; keeps at least one token."""
    out = scaled
    if top_k and top_k < out.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the mass strictly before it already reaches top_p
        before = probs.cumsum(dim=-1) - probs
        drop_sorted = before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def _sample(probs: torch.Tensor, slots: list[int], bsz: int, gen: torch.Generator | None) -> torch.Tensor:
    """One draw per place of the running batch from ``probs`` (its rows are the batch rows ``slots``, a subset
    of ``bsz`` rows in order).

    ``torch.multinomial`` with one sample draws one exponential variate per entry of the whole (rows x vocab)
    matrix and takes argmax(p / q) per row (checked on CPU with torch 2.14: same draws as that argmax), so the random numbers a row gets depend on its place in the matrix
    and on the matrix's shape, not on other rows' values. Finished rows therefore keep their place as a uniform
    dummy row: every running row gets exactly the draw it got when finished rows stayed in the batch, and seeded
    sampling gives the same tokens with or without compaction (the equivalence test checks it against the old
    loop). The dummy rows cost one exponential per entry, as the old loop's finished rows did."""
    if len(slots) == bsz:
        return torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    full = probs.new_ones((bsz, probs.shape[-1]))
    index = torch.tensor(slots, dtype=torch.long, device=probs.device)
    full[index] = probs
    return torch.multinomial(full, 1, generator=gen).squeeze(-1)[index]


class _StopScanner:
    """Incremental stop-string detection for one row: the same answer as ``cut_at_stop(decode(ids), stops)`` after
    every token, without re-decoding the whole text each time (which made long generations quadratic).

    The text is kept as ``prefix`` (the decoded ids before ``anchor``) plus the decoding of the short window
    ``ids[anchor:]``. The anchor advances only across a boundary where decoding splits exactly
    (``decode(a) + decode(b) == decode(a + b)`` checked on the window), so partial multi-byte tokens, a
    tokenizer's leading-space stripping or clean-up across the boundary stay inside the window. Only the part of
    the text that can hold a stop string ending after the previous text's unchanged prefix is searched: no stop
    string lay in the previous text, so any occurrence now must end past that prefix. A hit is confirmed on the
    full decoding before it is reported (one decode per row that stops); should that ever disagree, the row falls
    back to full decoding at every token, today's exact rule."""

    window = 8  # tokens kept in the window before the anchor tries to advance

    def __init__(self, decode: Any, stops: Sequence[str]) -> None:
        self.decode = decode
        self.stops = tuple(stops)
        self.longest = max(len(s) for s in self.stops)
        self.anchor = 0
        self.prefix = ""
        self.text = ""  # the full text after the previous token
        self.exact = False  # fall back to decoding the whole text at every token

    def push(self, ids: list[int]) -> str | None:
        """Take the row's ids after one more token; the cut text when a stop string is now complete, else None."""
        if self.exact:
            text = self.decode(ids)
            end = cut_at_stop(text, self.stops)
            return None if end is None else text[:end]
        tail = self.decode(ids[self.anchor:])
        text = self.prefix + tail
        previous = self.text[len(self.prefix):]
        same = 0
        for a, b in zip(previous, tail):
            if a != b:
                break
            same += 1
        start = max(0, len(self.prefix) + same - self.longest + 1)
        best: tuple[int, int] | None = None
        for s in self.stops:
            pos = text.find(s, start)
            if pos >= 0 and (best is None or (pos, -(pos + len(s))) < (best[0], -best[1])):
                best = (pos, pos + len(s))
        self.text = text
        if best is not None:
            full = self.decode(ids)
            if full == text:
                return text[:best[1]]
            self.exact = True  # the window's text disagreed with the full decoding: use today's rule from now on
            end = cut_at_stop(full, self.stops)
            return None if end is None else full[:end]
        if len(ids) - self.anchor > self.window:
            split = len(ids) - 1  # keep the newest token in the window: the next one may join it
            head, last = self.decode(ids[self.anchor:split]), self.decode(ids[split:])
            # the newest token must show text of its own (not a special token decoding to nothing, not part of
            # a multi-byte character) so that the check below tests the boundary rather than passing vacuously
            if last and "\ufffd" not in last and not head.endswith("\ufffd") and head + last == tail:
                self.prefix += head
                self.anchor = split
        return None


class HFGenerator:
    """Generator over an HF causal LM (plain or peft-wrapped) and its tokenizer."""

    # CPU matrix products (MKL sgemm, one thread) take another kernel below 4 rows, which changes a row's results
    # in the last bits (measured: rows 1-3 differ, any 4 or more agree with the full batch). The running batch
    # therefore shrinks as rows finish but not below 4 rows (or its starting size), so that every row computes
    # exactly what it computed in the full batch and outputs match the loop without compaction bit for bit. With
    # several threads MKL also splits the rows among threads by batch size (measured with 2 threads: 5-7 and 9-11
    # rows differ too), so there the last bits may differ, as the old loop's already did between batch sizes.
    min_running_rows = 4

    def __init__(self, model: torch.nn.Module, tokenizer: Any, batch_size: int = 32,
                 autocast: bool | None = None) -> None:
        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise ValueError("HFGenerator drives decoder-only (causal) models; use model.generate for seq2seq")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.autocast = autocast  # None: bf16 autocast on CUDA when the weights are float32 and the GPU has bf16

    # ---- weights -------------------------------------------------------------------------------------------
    def update_weights(self, model_or_state_dict: Any) -> None:
        """Take new policy weights: a module is shared as is; a state dict is copied in (peft prefixes dropped)."""
        if isinstance(model_or_state_dict, torch.nn.Module):
            self.model = model_or_state_dict
            return
        if not isinstance(model_or_state_dict, dict):
            raise TypeError(f"update_weights takes an nn.Module or a state dict, got {type(model_or_state_dict)}")
        own = self.model.state_dict()
        state = {}
        for key, value in model_or_state_dict.items():
            name = key if key in own else key.removeprefix("base_model.model.")
            if name not in own:
                raise ValueError(f"update_weights: parameter {key!r} does not exist in the generator's model")
            state[name] = value
        self.model.load_state_dict(state, strict=False)

    # ---- helpers ---------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def eos_token_ids(self) -> set[int]:
        """Ids that end a generation: the tokenizer's eos and every id of the model's generation-config eos."""
        return self._eos_ids()

    @property
    def max_context_tokens(self) -> int | None:
        """The model's ``max_position_embeddings`` when its config has one (prompt + generated tokens)."""
        config = getattr(self.model, "config", None)
        config = getattr(config, "text_config", None) or config  # VL models keep the LM's settings apart
        limit = getattr(config, "max_position_embeddings", None)
        return int(limit) if isinstance(limit, int) and limit > 0 else None

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        gen_cfg = getattr(self.model, "generation_config", None)
        extra = getattr(gen_cfg, "eos_token_id", None)
        if isinstance(extra, int):
            ids.add(extra)
        elif isinstance(extra, Sequence):
            ids.update(int(x) for x in extra)
        return ids

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def _encode(self, prompts: Prompts) -> list[list[int]]:
        vocab = getattr(getattr(self.model, "config", None), "vocab_size", None)
        kind = check_prompts(prompts, vocab)
        if kind == "ids":
            return [list(map(int, p)) for p in prompts]
        return [self.tokenizer(p)["input_ids"] for p in prompts]

    def _autocast_context(self) -> contextlib.AbstractContextManager:
        device = self.device
        if device.type != "cuda" or self.autocast is False:
            return contextlib.nullcontext()
        if self.autocast is None:
            float32 = next(self.model.parameters()).dtype == torch.float32
            if not (float32 and torch.cuda.is_bf16_supported()):
                return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _keep(self, slots: list[int], finish: list[str | None]) -> list[int]:
        """Places of the running batch to keep for the next step: the unfinished rows, topped up with finished
        ones (in batch order) to ``min_running_rows`` when the batch had that many."""
        keep = [j for j, i in enumerate(slots) if finish[i] is None]
        short = min(len(slots), self.min_running_rows) - len(keep)
        if short > 0:
            keep = sorted(keep + [j for j, i in enumerate(slots) if finish[i] is not None][:short])
        return keep

    # ---- generation --------------------------------------------------------------------------------------------
    def generate(self, prompts: Prompts, params: SamplingParams) -> list[list[Completion]]:
        """Per prompt, ``params.n`` completions (the n samples of a prompt are independent draws)."""
        if len(prompts) == 0:
            return []
        params.validate()
        encoded = self._encode(prompts)
        rows = [ids for ids in encoded for _ in range(params.n)]
        gen = None
        if params.seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            flat: list[Completion] = []
            with self._autocast_context():
                for start in range(0, len(rows), self.batch_size):
                    flat.extend(self._generate_batch(rows[start:start + self.batch_size], params, gen))
        finally:
            self.model.train(was_training)
        return [flat[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    @torch.no_grad()
    def _generate_batch(self, rows: list[list[int]], params: SamplingParams,
                        gen: torch.Generator | None) -> list[Completion]:
        device = self.device
        bsz, width = len(rows), max(len(r) for r in rows)
        pad_id = self._pad_id()
        eos_ids = set() if params.ignore_eos else self._eos_ids()
        # One prefill per distinct prompt (the n samples of a prompt share it; its cache rows are then copied).
        # Extra copies only where the prefill would otherwise run fewer matrix rows than min_running_rows.
        firsts: dict[tuple[int, ...], int] = {}
        source = [firsts.setdefault(tuple(r), len(firsts)) for r in rows]
        unique = [list(r) for r in firsts]
        extra = 0  # copies of the first prompt, dropped after the prefill
        while len(unique) + extra < bsz and (len(unique) + extra) * width < self.min_running_rows:
            extra += 1
        unique += [unique[0]] * extra
        input_ids = torch.full((len(unique), width), pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(unique), width), dtype=torch.long, device=device)
        for i, r in enumerate(unique):
            input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long, device=device)
            mask[i, width - len(r):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)

        out_ids: list[list[int]] = [[] for _ in range(bsz)]
        out_lp: list[list[float]] = [[] for _ in range(bsz)]
        out_top: list[list[list[tuple[int, float]]]] = [[] for _ in range(bsz)]
        out_ent: list[list[float]] = [[] for _ in range(bsz)]
        finish: list[str | None] = [None] * bsz
        cut_text: list[str | None] = [None] * bsz
        temp = 1.0 if params.greedy else params.temperature
        need_logp = params.logprobs or params.entropy or params.top_logprobs > 0

        from transformers import DynamicCache

        cache = DynamicCache()
        scanners = [_StopScanner(self._decode, params.stop) for _ in range(bsz)] if params.stop else None
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()
        if len(unique) != bsz or source != list(range(bsz)):
            expand = torch.tensor(source, dtype=torch.long, device=device)
            cache.reorder_cache(expand)
            mask, positions, logits = mask[expand], positions[expand], logits[expand]
        step_pos = positions[:, -1:]
        slots = list(range(bsz))  # the batch row each place of the running batch holds (finished ones: padding)
        for step in range(params.max_new_tokens):
            logp = F.log_softmax(logits / temp, dim=-1) if need_logp else None
            if params.greedy:
                chosen = logits.argmax(dim=-1)
            else:
                filtered = filter_logits(logits / temp, params.top_k, params.top_p)
                chosen = _sample(filtered.softmax(dim=-1), slots, bsz, gen)
            chosen_list = chosen.tolist()
            chosen_lp = logp.gather(-1, chosen[:, None]).squeeze(-1).tolist() if params.logprobs else None
            # entropy of softmax(logits / T) over the whole vocabulary; exp(-inf) * -inf terms are masked to 0
            ent = (-(logp.exp() * logp).nan_to_num(0.0).sum(-1)).tolist() if params.entropy else None
            top = None
            if params.top_logprobs:
                k = min(params.top_logprobs, logp.shape[-1])
                top_v, top_i = torch.topk(logp, k, dim=-1)
                top = (top_i.tolist(), top_v.tolist())
            for j, i in enumerate(slots):
                if finish[i] is not None:
                    continue
                tok = chosen_list[j]
                out_ids[i].append(tok)
                if chosen_lp is not None:
                    out_lp[i].append(chosen_lp[j])
                if top is not None:
                    out_top[i].append(list(zip(top[0][j], top[1][j])))
                if ent is not None:
                    out_ent[i].append(ent[j])
                if tok in eos_ids:
                    finish[i] = "eos"
                elif scanners is not None:
                    hit = scanners[i].push(out_ids[i])
                    if hit is not None:
                        finish[i], cut_text[i] = "stop", hit
            if all(f is not None for f in finish) or step == params.max_new_tokens - 1:
                break
            keep = self._keep(slots, finish)
            if len(keep) < len(slots):  # finished rows leave the running batch; their cache rows are dropped
                index = torch.tensor(keep, dtype=torch.long, device=device)
                cache.reorder_cache(index)
                mask, step_pos = mask[index], step_pos[index]
                slots = [slots[j] for j in keep]
            # rows kept only to fill the batch up to min_running_rows decode a pad token (ignored)
            next_ids = torch.tensor([out_ids[i][-1] if finish[i] is None else pad_id for i in slots],
                                    dtype=torch.long, device=device)
            step_pos = step_pos + 1
            mask = torch.cat([mask, torch.ones((len(slots), 1), dtype=mask.dtype, device=device)], dim=1)
            out = self.model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=step_pos,
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()

        completions = []
        for i in range(bsz):
            reason = finish[i] or "length"
            text = cut_text[i] if cut_text[i] is not None else self._decode(out_ids[i])
            completions.append(Completion(
                text=text,
                token_ids=out_ids[i],
                logprobs=out_lp[i] if params.logprobs else None,
                top_logprobs=out_top[i] if params.top_logprobs else None,
                finish_reason=reason,  # type: ignore[arg-type]
                prompt_token_ids=list(rows[i]),
                entropies=out_ent[i] if params.entropy else None,
            ))
        return completions
