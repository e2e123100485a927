"""The tiny policies and their cached SFT warm starts, trained on oracle transcripts played through the real protocol.

Oracle transcripts are produced by running `arr.protocol.episode_program` itself with scripted generators in place
of the models, so the warm start sees exactly the token layout (prompt, turns, observations) that RL rollouts have:
- the oracle reasoner reads its transcript, searches each hop's gold sub-question in turn (`<think>` holds the hop's
  subject, later the final answer), writes `<verify>yes</verify>` when the last information held the hop's answer and
  moves on, else `<verify>no</verify>` and searches the same sub-question again, and answers with the gold answer once
  every hop is resolved;
- the oracle verifier is trained for format only: it accepts (`<selected_doc>Doc 1</selected_doc>`, the sentence
  of Doc 1 sharing most words with the query quoted in both `<verify>` and `<response>`) or rejects (`<verify>not
  useful</verify><response>No answer in the documents.</response>`) with a seeded coin of probability `accept_p`,
  blind to the evidence, so the warm start's rejection gap is ~0 and any gap after RL is learnt; after the
  reasoner's answer it quotes and copies it (`<verify>a</verify><final_answer>a</final_answer>`). Both spans of an
  accepting reply quote the evidence because the process reward scores every `<verify>` and `<response>` span: a
  span without the answer after answer-bearing documents gets -clarity.
Reasoner traces come from episodes with the oracle verifier (`traces_per_question` per question) and from the
verifier-less protocol (raw documents, `raw_traces_per_question`), so one warm start serves the `arr` and
`reasoner_only` rows. A reasoner trace is kept only when its episode ends with an answer (counted in the stamp).

Both roles share one byte-level BPE tokenizer (the driver passes token ids between them) and the same random init
(the paper: two policies from one base model); the base and each role's SFT are built once per settings hash
(`shared.atomic.cached_dir`, `shared.rl.warmstart.cached_sft_policy`) and reused across rows, seeds and reruns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.generation import Completion

from arr.protocol import (
    REASONER,
    REJECT_TEXT,
    VERIFIER,
    ProtocolOptions,
    episode_program,
    last_block,
)

ARR_EXTRA_TAGS = ("verify", "selected_doc", "response", "final_answer")


class ScriptedGenerator:
    """A `Generator` whose completions come from `reply(context_text) -> text` (tokenised, zero logprobs and
    entropies): plays a scripted role through the real episode program."""

    def __init__(self, tokenizer: Any, reply: Callable[[str], str]) -> None:
        self.tokenizer, self.reply = tokenizer, reply

    def generate(self, prompts: Sequence[Sequence[int]], params: Any) -> list[list[Completion]]:
        out = []
        for ids in prompts:
            text = self.reply(self.tokenizer.decode(list(ids), skip_special_tokens=False))
            tok = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            out.append([Completion(text=text, token_ids=tok, logprobs=[0.0] * len(tok), finish_reason="stop",
                                   entropies=[0.0] * len(tok) if params.entropy else None)])
        return out

    def update_weights(self, model_or_state_dict: Any) -> None:  # nothing to update
        return None


def hop_subject(sub_question: str) -> str:
    """The subject of a KB one-hop question ("Where was X born?" -> "X"), from the KB's question templates."""
    from benchmarks.synthetic.kb import RELATIONS

    for _, _, _, template in RELATIONS.values():
        m = re.fullmatch(re.escape(template).replace(r"\{s\}", "(.+)"), sub_question)
        if m:
            return m.group(1)
    return sub_question


def _turns(text: str) -> list[tuple[str, str | None]]:
    """(search query, following information) pairs of a reasoner transcript, in order."""
    pairs: list[tuple[str, str | None]] = []
    for m in re.finditer(r"<search>(.*?)</search>|<information>(.*?)</information>", text, re.DOTALL):
        if m.group(1) is not None:
            pairs.append((m.group(1).strip(), None))
        elif pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], m.group(2))
    return pairs


def oracle_reasoner(records: Mapping[str, Mapping[str, Any]], style_prefix: str = "Question: ") -> Callable:
    """reply(context) of the oracle reasoner (see the module docstring); records are keyed by question text."""
    from arr.rewards import gold_in

    def reply(context: str) -> str:
        question = _question(context, style_prefix)
        rec = records[question]
        subs = rec["sub_questions"]
        hop, last_ok = 0, None
        for query, info in _turns(context):
            if hop < len(subs) and query == subs[hop]["question"]:
                last_ok = info is not None and gold_in(info, [subs[hop]["answer"]])
                hop += int(last_ok)
            else:
                last_ok = False
        head = "" if last_ok is None else f"<verify>{'yes' if last_ok else 'no'}</verify>"
        if hop >= len(subs):
            answer = rec["golden_answers"][0]
            return f"{head}<think>{answer}</think><answer>{answer}</answer>"
        sub = subs[hop]["question"]
        return f"{head}<think>{hop_subject(sub)}</think><search>{sub}</search>"

    return reply


def best_sentence(doc_contents: str, query: str) -> str:
    """The sentence of a document body sharing the most words with the query (the first on ties)."""
    body = doc_contents.partition("\n")[2] or doc_contents
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", body) if s.strip()] or [body.strip()]
    words = set(re.findall(r"\w+", query.lower()))
    return max(sentences, key=lambda s: (len(words & set(re.findall(r"\w+", s.lower()))), -sentences.index(s)))


def oracle_verifier(accept_p: float, seed: int) -> Callable:
    """reply(context) of the format-only verifier: a seeded coin accepts Doc 1 or rejects; copies the answer."""
    rng = random.Random(f"verifier-oracle|{seed}")

    def reply(context: str) -> str:
        tail = context.rstrip()
        if tail.endswith("</answer>"):
            answer = last_block(context, "answer") or ""
            return f"<verify>{answer}</verify><final_answer>{answer}</final_answer>"
        info = last_block(context, "information") or ""
        query = (re.search(r"Query: (.*)", info) or [None, ""])[1]
        first = re.search(r"Doc 1\(Title: (.*?)\) (.*?)(?=\nDoc \d+\(Title:|$)", info, re.DOTALL)
        if first and rng.random() < accept_p:
            sentence = best_sentence(f"{first.group(1)}\n{first.group(2)}", query)
            return f"<verify>{sentence}</verify><selected_doc>Doc 1</selected_doc><response>{sentence}</response>"
        return f"<verify>not useful</verify><response>{REJECT_TEXT}</response>"

    return reply


def _question(context: str, prefix: str) -> str:
    m = re.search(re.escape(prefix) + r"(.*?)\n", context)
    if not m:
        raise ValueError(f"oracle: no question line {prefix!r} in the context")
    return m.group(1)


def oracle_rollouts(tokenizer: Any, records: Sequence[Mapping[str, Any]], evidence: Any, protocol: Any,
                    ws: Any) -> tuple[list[Any], list[Any], dict[str, int]]:
    """(reasoner trajectories, verifier trajectories, counts) of the oracle transcripts (see the module docstring)."""
    from shared.rollout.driver import MultiRoleDriver

    by_question = {r["question"]: r for r in records}
    opts = ProtocolOptions(max_turns=protocol.max_turns, reasoner_tokens=10_000, verifier_tokens=10_000,
                           prompt_style="short", verifier=True, entropy=False)
    reasoner = ScriptedGenerator(tokenizer, oracle_reasoner(by_question))
    verifier = ScriptedGenerator(tokenizer, oracle_verifier(ws.accept_p, ws.seed))
    joint = MultiRoleDriver({REASONER: reasoner, VERIFIER: verifier}).run(
        episode_program(evidence, opts), records, n=ws.traces_per_question)
    keep_r = [t for t, ep in zip(joint[REASONER], joint.episodes) if ep.result.finish == "answer"]
    keep_v = list(joint[VERIFIER])
    counts = {"with_verifier": len(joint.episodes), "with_verifier_answered": len(keep_r)}
    if ws.raw_traces_per_question > 0:
        raw = MultiRoleDriver({REASONER: reasoner}).run(
            episode_program(evidence, dataclasses.replace(opts, verifier=False)), records,
            n=ws.raw_traces_per_question)
        kept = [t for t, ep in zip(raw[REASONER], raw.episodes) if ep.result.finish == "answer"]
        counts.update(raw=len(raw.episodes), raw_answered=len(kept))
        keep_r += kept
    return keep_r, keep_v, counts


def tokenizer_texts(corpus: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Texts the BPE tokenizer is trained on: the corpus, the training questions and their sub-questions."""
    texts = [str(d["contents"]) for d in corpus]
    for r in records:
        texts.append(r["question"])
        texts += [s["question"] for s in r.get("sub_questions") or []]
    return texts


def settings_hash(settings: Mapping[str, Any]) -> str:
    import json

    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def base_settings(cfg: Any) -> dict[str, Any]:
    """What determines the shared tokenizer, the random init and the training questions (the dev and test counts do
    not: the question draws are prefix-stable, so the quick and full runs share one warm start)."""
    data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in ("dev_questions", "test_questions")}
    return {"model": dataclasses.asdict(cfg.model) | {"path": "", "verifier_path": ""},
            "data": data, "tags": list(ARR_EXTRA_TAGS), "format": 1}


def build_base(cfg: Any, data: Mapping[str, Any], root: Path) -> Path:
    """The shared tokenizer and the random tiny Qwen2 both roles start from (cached by settings)."""
    from shared.atomic import cached_dir
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm

    settings = base_settings(cfg)
    m = cfg.model

    def build(tmp: Path) -> dict[str, Any]:
        tok = build_tokenizer(tokenizer_texts(data["corpus"], data["train"]), kind="bpe", vocab_size=m.vocab_size,
                              extra_tags=ARR_EXTRA_TAGS)
        tiny_causal_lm(tmp, tokenizer=tok, hidden=m.hidden, layers=m.layers, heads=m.heads, ffn=m.ffn, seed=m.seed,
                       max_positions=m.max_positions)
        return {"vocab": len(tok)}

    return cached_dir(root / f"base-{settings_hash(settings)}", settings, build)[0]


def role_stamp(cfg: Any, name: str, sft: Any) -> dict[str, Any]:
    """Everything that determines role `name`'s warm-start weights (its cache key): the base, the oracle traces'
    settings and the SFT settings less the fields that leave the weights alone (`SFT_STAMP_IGNORED`)."""
    from shared.rl.warmstart import SFT_STAMP_IGNORED

    return {"base": settings_hash(base_settings(cfg)), "role": name,
            "warm_start": {k: v for k, v in dataclasses.asdict(cfg.warm_start).items() if k != "cache_dir"},
            "protocol": {"max_turns": cfg.protocol.max_turns, "topk": cfg.protocol.topk},
            "evidence": dataclasses.asdict(cfg.evidence),
            "sft": {k: v for k, v in dataclasses.asdict(sft).items() if k not in SFT_STAMP_IGNORED}}


def warm_starts(cfg: Any, data: Mapping[str, Any], root: str | Path, log: Any = print,
                only: Sequence[str] | None = None) -> dict[str, Path]:
    """{"reasoner": path, "verifier": path} (or {"shared": path} with roles.policies=shared): cached SFT'd policies
    (`only`: build just these, e.g. one role per process)."""
    from shared.rl.sft import trajectory_to_example
    from shared.rl.warmstart import cached_sft_policy
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arr.train import build_evidence

    root = Path(root).expanduser()
    base = build_base(cfg, data, root)
    tok = AutoTokenizer.from_pretrained(base)
    made: dict[str, Any] = {}

    def traces() -> dict[str, Any]:
        if not made:
            ev = build_evidence(cfg, data["corpus"], seed=cfg.warm_start.seed + 7)
            r, v, counts = oracle_rollouts(tok, data["train"], ev, cfg.protocol, cfg.warm_start)
            eos = tok.eos_token_id
            made.update(reasoner=[trajectory_to_example(t, eos) for t in r],
                        verifier=[trajectory_to_example(t, eos) for t in v], counts=counts)
            log(f"oracle traces: {counts}")
        return made

    def build_model(scratch: Path) -> tuple[Any, Any]:
        return AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)

    ws = cfg.warm_start
    roles = {"shared": (ws.reasoner_steps, ("reasoner", "verifier"))} if cfg.roles.policies == "shared" else \
        {"reasoner": (ws.reasoner_steps, ("reasoner",)), "verifier": (ws.verifier_steps, ("verifier",))}
    out = {}
    for name, (steps, parts) in roles.items():
        if only is not None and name not in only:
            continue
        sft = dataclasses.replace(cfg.sft, steps=steps, seed=ws.seed)
        stamp = role_stamp(cfg, name, sft)

        def records(parts: tuple[str, ...] = parts) -> list[dict]:
            t = traces()
            return [x for p in parts for x in t[p]]

        def counts(model: Any, tokenizer: Any) -> dict[str, Any]:
            return {"traces": dict(traces()["counts"])}

        target = root / f"{name}-{settings_hash(stamp)}"
        log(f"warm start {name}: {target}")
        out[name] = cached_sft_policy(target, build_model, records, settings=sft, test_fn=counts,
                                      stamp_settings=stamp)
    return out
