"""The HF generation loop's speed-ups change no output: incremental stop-string detection, finished rows leaving
the running batch (KV cache compacted), one prefill per prompt shared by its n samples, and log-softmax / entropies
only when asked. On the tiny Qwen2 (and byte-level BPE tokenizers), for seeded sampling, greedy, several stop strings
(one spanning tokens, one never hit) and ragged prompt and output lengths, the loop gives exactly the token ids,
text, finish reasons, log-probs, entropies and top log-probs of the loop it replaced.
`ReferenceHFGenerator._generate_batch` below is that loop's code as of commit 156bbd9, kept verbatim as the
reference (it re-decodes each row's whole text after every token, decodes padding for finished rows, prefills every
row and takes a full log-softmax at every step)."""

from __future__ import annotations

import random

import pytest
import torch
from shared.generation import Completion, HFGenerator, SamplingParams
from shared.generation.base import cut_at_stop
from shared.generation.hf import filter_logits
from shared.modeling import load_model
from torch.nn import functional as F  # noqa: N812

PROMPTS = ["Q: 43+9-6=?\nA: ", "x", "Q: what is the sum of 17 and 25, written out in words?\nA: ", "12"]


class ReferenceHFGenerator(HFGenerator):
    """HFGenerator with the generation loop as it was at commit 156bbd9 (whole-text decode per token)."""

    @torch.no_grad()
    def _generate_batch(self, rows: list[list[int]], params: SamplingParams,
                        gen: torch.Generator | None) -> list[Completion]:
        device = self.device
        bsz, width = len(rows), max(len(r) for r in rows)
        pad_id = self._pad_id()
        eos_ids = set() if params.ignore_eos else self._eos_ids()
        input_ids = torch.full((bsz, width), pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((bsz, width), dtype=torch.long, device=device)
        for i, r in enumerate(rows):
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

        from transformers import DynamicCache

        cache = DynamicCache()
        step_ids, step_pos = input_ids, positions
        for _step in range(params.max_new_tokens):
            out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos,
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
            logp = F.log_softmax(logits / temp, dim=-1)
            if params.greedy:
                chosen = logits.argmax(dim=-1)
            else:
                filtered = filter_logits(logits / temp, params.top_k, params.top_p)
                probs = filtered.softmax(dim=-1)
                chosen = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            chosen_lp = logp.gather(-1, chosen[:, None]).squeeze(-1).tolist()
            # entropy of softmax(logits / T) over the whole vocabulary; exp(-inf) * -inf terms are masked to 0
            ent = (-(logp.exp() * logp).nan_to_num(0.0).sum(-1)).tolist() if params.entropy else None
            top = None
            if params.top_logprobs:
                k = min(params.top_logprobs, logp.shape[-1])
                top_v, top_i = torch.topk(logp, k, dim=-1)
                top = (top_i.tolist(), top_v.tolist())
            chosen_list = chosen.tolist()
            for i in range(bsz):
                if finish[i] is not None:
                    continue
                tok = chosen_list[i]
                out_ids[i].append(tok)
                out_lp[i].append(chosen_lp[i])
                if top is not None:
                    out_top[i].append(list(zip(top[0][i], top[1][i])))
                if ent is not None:
                    out_ent[i].append(ent[i])
                if tok in eos_ids:
                    finish[i] = "eos"
                elif params.stop:
                    text = self._decode(out_ids[i])
                    end = cut_at_stop(text, params.stop)
                    if end is not None:
                        finish[i], cut_text[i] = "stop", text[:end]
            if all(f is not None for f in finish):
                break
            # finished rows keep decoding a pad token (ignored); active rows feed their new token
            next_ids = torch.tensor([chosen_list[i] if finish[i] is None else pad_id for i in range(bsz)],
                                    dtype=torch.long, device=device)
            step_ids = next_ids[:, None]
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, torch.ones((bsz, 1), dtype=mask.dtype, device=device)], dim=1)

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


@pytest.fixture(scope="module")
def pair(tiny_qwen2_dir):
    model, tok = load_model(tiny_qwen2_dir, device="cpu")
    return HFGenerator(model, tok, batch_size=8), ReferenceHFGenerator(model, tok, batch_size=8), tok


def _same(new: list[list[Completion]], ref: list[list[Completion]], exact: bool = True) -> None:
    """Equal completions; with ``exact=False`` floats may differ by 1e-5 (ids, text and reasons still equal)."""
    assert len(new) == len(ref)

    def close(x, y) -> bool:
        if exact or x is None or y is None:
            return x == y
        return len(x) == len(y) and all(abs(u - v) <= 1e-5 for u, v in zip(x, y))

    for rows_new, rows_ref in zip(new, ref):
        assert len(rows_new) == len(rows_ref)
        for a, b in zip(rows_new, rows_ref):
            assert a.token_ids == b.token_ids
            assert a.text == b.text
            assert a.finish_reason == b.finish_reason
            assert close(a.logprobs, b.logprobs)
            assert close(a.entropies, b.entropies)
            if exact or a.top_logprobs is None:
                assert a.top_logprobs == b.top_logprobs
            else:
                assert [[i for i, _ in pos] for pos in a.top_logprobs] == [[i for i, _ in pos] for pos in b.top_logprobs]
                assert all(close([v for _, v in p], [v for _, v in q]) for p, q in zip(a.top_logprobs, b.top_logprobs))
            assert a.prompt_token_ids == b.prompt_token_ids


def _row_invariant_kernels() -> bool:
    """Whether this machine's float32 matrix product gives a row the same bits inside any batch of at least
    HFGenerator.min_running_rows rows (MKL on x86 does; the loop's bit-exactness rests on it). Elsewhere the
    compaction test compares floats to 1e-5 instead."""
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(40, 64, generator=gen), torch.randn(107, 64, generator=gen)
    full = x @ w.T
    return all(torch.equal(x[:k] @ w.T, full[:k]) for k in range(HFGenerator.min_running_rows, 40))


def _spanning_stops(free: list[list[Completion]]) -> list[str]:
    """Per free completion, a 3-character stop string from its middle (the tiny tokenizer has one token per
    character, plus special tokens that decode to nothing, so it spans 3 or more tokens)."""
    return [c.text[10 + k:13 + k] for k, comps in enumerate(free) for c in comps if len(c.text) > 20 + k]


@pytest.mark.parametrize("greedy", [False, True])
def test_incremental_stop_detection_matches_reference_loop(pair, greedy):
    new, ref, tok = pair
    base = dict(max_new_tokens=40, temperature=0 if greedy else 0.9, top_p=1.0 if greedy else 0.95, seed=3,
                n=1 if greedy else 2, entropy=True, top_logprobs=2)
    free = ref.generate(PROMPTS, SamplingParams(**base))
    _same(new.generate(PROMPTS, SamplingParams(**base)), free)
    spanning = _spanning_stops(free)
    assert len(spanning) >= 2
    for stops in [tuple(spanning[:1]) + ("never there \u2603",), tuple(spanning), ("never there", "\u2603\u2603")]:
        params = SamplingParams(**base, stop=stops)
        expected = ref.generate(PROMPTS, params)
        got = new.generate(PROMPTS, params)
        _same(got, expected)
        reasons = [c.finish_reason for comps in expected for c in comps]
        if stops[0] == "never there":
            assert "stop" not in reasons
        else:
            assert "stop" in reasons  # the spanning stop string was hit and cut at the same token
            for comps in got:
                for c in comps:
                    if c.finish_reason == "stop":
                        full = tok.decode(c.token_ids, skip_special_tokens=True)
                        shorter = tok.decode(c.token_ids[:-1], skip_special_tokens=True)
                        assert cut_at_stop(full, stops) is not None and cut_at_stop(shorter, stops) is None


def _bytes_decode(ids: list[int]) -> str:
    """A byte-level decoder with the awkward parts of real ones: a partial UTF-8 sequence decodes to U+FFFD until
    its last byte arrives, a leading space is stripped (as sentencepiece does), 0 is a special token (dropped)."""
    return bytes(i for i in ids if i).decode("utf-8", errors="replace").removeprefix(" ")


@pytest.mark.parametrize("seed", range(6))
def test_stop_scanner_matches_whole_text_rule_on_multibyte_bytes(seed):
    """_StopScanner after every token says what cut_at_stop on the whole decoded text says (random byte streams
    of ASCII, 2- to 4-byte UTF-8 characters, spaces and specials; stops spanning byte tokens, one never hit)."""
    from shared.generation.hf import _StopScanner

    rng = random.Random(seed)
    alphabet = ["a", "b", " ", "\u00e9", "\u20ac", "\U0001f600", "ab", " \u20ac"]
    hits = 0
    for _ in range(40):
        text = "".join(rng.choice(alphabet) for _ in range(60))
        ids = [b for ch in text for b in ch.encode("utf-8")]
        for k in rng.sample(range(len(ids)), 4):
            ids.insert(k, 0)
        stops = ("\u20ac\U0001f600", "b \u00e9a", "zz", rng.choice(["a\u20aca", "\u00e9\u00e9", " b"]))
        scanner = _StopScanner(_bytes_decode, stops)
        for k in range(1, len(ids) + 1):
            full = _bytes_decode(ids[:k])
            end = cut_at_stop(full, stops)
            got = scanner.push(ids[:k])
            assert got == (None if end is None else full[:end]), (seed, k)
            if got is not None:
                hits += 1
                break
    assert hits >= 10


def test_long_generation_window_advances_and_stays_exact(pair):
    """Past the scanner's window (8 tokens) the decoded prefix is reused; 120 tokens with stops cut late."""
    new, ref, tok = pair
    base = dict(max_new_tokens=120, temperature=1.0, seed=9, n=2, ignore_eos=True)
    free = ref.generate(PROMPTS, SamplingParams(**base))
    late = [c.text[100:103] for comps in free for c in comps if len(c.text) > 110]
    assert late
    params = SamplingParams(**base, stop=tuple(late[:2]) + ("never there",))
    expected = ref.generate(PROMPTS, params)
    _same(new.generate(PROMPTS, params), expected)
    assert "stop" in {c.finish_reason for comps in expected for c in comps}


@pytest.fixture(scope="module", params=["qwen2.5", "llama-3"])
def bpe_pair(request, tmp_path_factory):
    """New and reference loops over a tiny model whose tokenizer is a byte-level BPE with a real family's special
    tokens (the token-drift test's), so tokens hold several characters and stops start or end inside a token."""
    import importlib.util
    from pathlib import Path

    from shared.modeling.tiny import tiny_causal_lm

    where = Path(__file__).with_name("test_token_drift.py")  # test modules are not a package: load it by path
    spec_ = importlib.util.spec_from_file_location("_token_drift", where)
    drift = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(drift)
    spec = drift.FAMILIES[request.param]
    path = tiny_causal_lm(tmp_path_factory.mktemp(request.param), arch=spec["arch"],
                          tokenizer=drift._tokenizer(request.param), hidden=64, layers=2, heads=4, ffn=128)
    model, tok = load_model(path, device="cpu")
    return HFGenerator(model, tok, batch_size=8), ReferenceHFGenerator(model, tok, batch_size=8)


def test_incremental_stop_detection_matches_reference_on_bpe_tokenizers(bpe_pair):
    new, ref = bpe_pair
    prompts = ["the tool answered with", "what is the capital", "hello world, the answer", "search"]
    base = dict(max_new_tokens=48, temperature=1.0, top_p=1.0, seed=11, n=2, entropy=True)
    free = ref.generate(prompts, SamplingParams(**base))
    texts = [c.text for comps in free for c in comps if len(c.text) > 24]
    assert len(texts) >= 3
    # stops cut out of the middle of free completions at odd offsets: they start and end inside BPE tokens
    stops = [texts[0][7:11], texts[1][13:18], texts[2][5:7]]
    for stop_set in [tuple(stops[:1]), tuple(stops), (stops[2], "never there")]:
        params = SamplingParams(**base, stop=stop_set)
        expected = ref.generate(prompts, params)
        _same(new.generate(prompts, params), expected)
        assert "stop" in [c.finish_reason for comps in expected for c in comps]


def _forward_rows(model) -> tuple[list[tuple[int, bool]], object]:
    """Record (rows, is_prefill) for every forward of ``model``; a decode step attends to more than its input."""
    seen: list[tuple[int, bool]] = []

    def hook(_module, args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        seen.append((int(ids.shape[0]), ids.shape[1] == mask.shape[1]))

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


LOOP_CASES = {
    # greedy, ragged prompts, only log-probs asked; the tiny model repeats a prompt's last character when greedy,
    # so these stops end rows after 4, 6 and 3 tokens while the others run to the length limit
    "greedy-logprobs": (PROMPTS + ["Q: 7*8=?\nA: ", "abc"], dict(temperature=0, n=1, logprobs=True,
                                                                    stop=("xxxx", "222222", "ccc"))),
    # (sampled cases: single-character stops end rows at scattered steps)
    # seeded sampling with top-k/top-p, n = 4 per prompt (12 rows: a batch of 8 and one of 4), everything asked
    "sampled-n4-all": (PROMPTS[:3], dict(temperature=0.9, top_p=0.95, top_k=20, seed=5, n=4, logprobs=True,
                                        entropy=True, top_logprobs=3)),
    # seeded sampling, nothing but ids asked (no log-softmax taken), a prompt repeated in the batch
    "sampled-n3-ids-only": (["x", "12", "x"], dict(temperature=1.0, seed=7, n=3)),
    # a batch smaller than min_running_rows, one-token prompt, entropies only
    "sampled-small-batch": (["x"], dict(temperature=1.0, seed=2, n=3, entropy=True)),
    # one-token prompts, n = 4: the prefill runs fewer prompts than min_running_rows (extra copies added)
    "sampled-tiny-prefill": (["x", "y"], dict(temperature=1.2, seed=4, n=4, logprobs=True)),
}


@pytest.mark.parametrize("case", list(LOOP_CASES))
def test_compacted_batch_and_shared_prefill_match_reference_loop(pair, case):
    """Finished rows leave the running batch (KV cache compacted), the n samples of a prompt share one prefill and
    log-probs / entropies are computed only when asked, yet ids, text, finish reasons, log-probs, entropies and top
    log-probs are exactly the reference loop's (which decodes padding for finished rows and prefills each row)."""
    new, ref, _tok = pair
    prompts, extra = LOOP_CASES[case]
    params = SamplingParams(max_new_tokens=60, **{"stop": ("a", "7", ":", "Q"), **extra})
    expected = ref.generate(prompts, params)
    seen, handle = _forward_rows(new.model)
    try:
        got = new.generate(prompts, params)
    finally:
        handle.remove()
    _same(got, expected, exact=_row_invariant_kernels())
    lengths = [len(c.token_ids) for comps in expected for c in comps]
    assert len(set(lengths)) > 1  # ragged: rows finished at different steps
    sizes = [min(new.batch_size, len(lengths) - k) for k in range(0, len(lengths), new.batch_size)]
    assert [rows for rows, prefill in seen if prefill] and len([1 for _, p in seen if p]) == len(sizes)
    starts = [k for k, (_, prefill) in enumerate(seen) if prefill] + [len(seen)]
    shrank = shared_prefill = False
    for size, start, end in zip(sizes, starts, starts[1:]):
        decodes = [rows for rows, _ in seen[start + 1:end]]
        # never below min_running_rows (or the batch's own size): below it the matrix kernels change the bits
        assert all(min(size, new.min_running_rows) <= rows <= size for rows in decodes)
        shrank |= any(rows < size for rows in decodes)
        shared_prefill |= seen[start][0] < size
    if max(sizes) > new.min_running_rows:
        assert shrank  # finished rows left the running batch
    assert shared_prefill == (params.n > 1 or len(set(prompts)) < len(prompts)) or max(map(len, prompts)) == 1
