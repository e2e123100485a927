"""Token drift: multi-turn rollouts in real chat formats keep every generated id and never re-tokenise the history.

Two chat formats, each rendered by the model family's own chat template (the Jinja strings below, as published in
the `tokenizer_config.json` of Qwen/Qwen2.5-7B-Instruct, Apache-2.0, and meta-llama/Meta-Llama-3-8B-Instruct,
Meta Llama 3 Community License; written out here, nothing is downloaded), over a byte-level BPE tokenizer that has
the family's special tokens and a tiny random model of the family's architecture (Qwen2, Llama):

- the rollout (`MultiRoleDriver` with the HF generator) appends each turn's sampled ids to the trajectory as they
  were sampled (mask 1) and the next user turn as the template's token delta (mask 0): the trajectory's policy runs
  are exactly the generator's outputs, turn by turn;
- the naive alternative, decode each turn and render the whole conversation again with the chat template (what a
  loop that keeps messages instead of ids does), gives other ids: a sampled split that is not BPE's canonical one
  is merged back (the trainer would score tokens the model never sampled), and Llama 3's template `trim`s the
  assistant text (whitespace the model wrote disappears). With canonically tokenised turns and no edge whitespace
  the two agree id for id, so the difference is the re-tokenisation and nothing in the scaffolding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from shared.generation import Completion, HFGenerator
from shared.modeling import load_model
from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
from shared.rollout.driver import GenRequest, MultiRoleDriver

QWEN25_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are "
    "provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Per family: template, special tokens, end of an assistant turn, the next user turn after it, generation-config eos.
FAMILIES = {
    "qwen2.5": dict(arch="qwen2", template=QWEN25_TEMPLATE, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                    special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                    user_turn="\n<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n",
                    gen_eos=["<|im_end|>", "<|endoftext|>"]),
    "llama-3": dict(arch="llama", template=LLAMA3_TEMPLATE, bos="<|begin_of_text|>", eos="<|eot_id|>",
                    pad="<|end_of_text|>",
                    special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                             "<|eot_id|>"],
                    user_turn="<|start_header_id|>user<|end_header_id|>\n\n{text}<|eot_id|>"
                              "<|start_header_id|>assistant<|end_header_id|>\n\n",
                    gen_eos=["<|eot_id|>", "<|end_of_text|>"]),
}
CORPUS = ["the tool answered with the value of the sum", "hello world, the answer is 42", "search the weather",
          "what is the capital of france", "paris is the capital", "the result of the lookup is ready"] * 20
SYSTEM = "You are a helpful assistant."


def _tokenizer(family: str):
    spec = FAMILIES[family]
    tok = build_tokenizer(CORPUS, kind="bpe", vocab_size=400)
    tok.add_special_tokens({"additional_special_tokens": [t for t in spec["special"] if t not in tok.get_vocab()]})
    tok.eos_token, tok.pad_token = spec["eos"], spec["pad"]
    if spec["bos"]:
        tok.bos_token = spec["bos"]
    tok.chat_template = spec["template"]
    return tok


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(family name, tokenizer, HF generator over a tiny random model of the family's architecture)."""
    name = request.param
    spec = FAMILIES[name]
    tok = _tokenizer(name)
    path = tiny_causal_lm(tmp_path_factory.mktemp(name), arch=spec["arch"], tokenizer=tok, hidden=64, layers=2,
                          heads=4, ffn=128)
    model, tok = load_model(path, device="cpu")
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids(spec["gen_eos"])  # a list, as in the release
    return name, tok, HFGenerator(model, tok)


class Recording:
    """The generator, recording every completion it returns (the ids the trainer must score)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.tokenizer, self.outputs = inner, inner.tokenizer, []

    eos_token_ids = property(lambda self: getattr(self.inner, "eos_token_ids", set()))

    def generate(self, prompts: Sequence, params: Any) -> list[list[Completion]]:
        out = self.inner.generate(prompts, params)
        self.outputs.append([[list(c.token_ids) for c in row] for row in out])
        return out

    def update_weights(self, model_or_state_dict: Any) -> None:
        self.inner.update_weights(model_or_state_dict)


class Scripted:
    """A generator whose turns are given token-id lists (to show each kind of drift on purpose)."""

    def __init__(self, tokenizer: Any, turns: list[list[int]]) -> None:
        self.tokenizer, self.turns, self.calls = tokenizer, turns, 0

    def generate(self, prompts: Sequence, params: Any) -> list[list[Completion]]:
        ids = self.turns[self.calls]
        self.calls += 1
        eos = ids and ids[-1] == self.tokenizer.eos_token_id
        return [[Completion(text=self.tokenizer.decode(ids, skip_special_tokens=True), token_ids=list(ids),
                            logprobs=[-1.0] * len(ids), finish_reason="eos" if eos else "length")]
                for _ in prompts]

    def update_weights(self, model_or_state_dict: Any) -> None:
        pass


def _observation(turn: int) -> str:
    return f"the tool answered {turn}"


def _program(family: str, turns: int, max_new_tokens: int):
    spec = FAMILIES[family]

    def chat(ep):
        ep.start("policy", [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ep.record["q"]}])
        for turn in range(turns):
            done = yield GenRequest("policy", max_new_tokens)
            # a turn cut by the token budget has no end-of-turn token yet: close it as the template would
            closing = "" if done.token_ids and done.token_ids[-1] == ep.tokenizer("policy").eos_token_id \
                else spec["eos"]
            if turn < turns - 1:
                ep.observe("policy", closing + spec["user_turn"].format(text=_observation(turn)))
    return chat


def _rollout(family: str, generator: Any, turns: int = 3, max_new_tokens: int = 10, records: int = 3, n: int = 2):
    recs = [{"id": f"q{i}", "q": f"what is the capital of france {i}"} for i in range(records)]
    return MultiRoleDriver({"policy": generator}, group_by_role=False).run(
        _program(family, turns, max_new_tokens), recs, n=n, seed=0)["policy"]


def _policy_runs(traj) -> list[list[int]]:
    runs, cur = [], []
    for tok, m in zip(traj.response_ids, traj.loss_mask):
        if m:
            cur.append(tok)
        elif cur:
            runs.append(cur)
            cur = []
    return runs + ([cur] if cur else [])


def _naive(tok, traj, turns: list[list[int]]) -> list[int]:
    """Re-render the conversation from decoded text with the chat template (what a message-keeping loop does)."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": traj.metadata["q"]}]
    for i, ids in enumerate(turns):
        messages.append({"role": "assistant", "content": tok.decode(ids, skip_special_tokens=True)})
        if i < len(turns) - 1:
            messages.append({"role": "user", "content": _observation(i)})
    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=False)
    ids = _ids(ids)
    if traj.response_ids and traj.response_ids[-1] == tok.eos_token_id:  # the rollout ends at the turn's end token;
        ids = ids[: len(ids) - ids[::-1].index(tok.eos_token_id)]  # the template adds a newline after it (Qwen)
    return ids


def _ids(encoded: Any) -> list[int]:
    return list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)


def _first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_rollout_keeps_every_generated_id_turn_by_turn(family):
    name, tok, gen = family
    rec = Recording(gen)
    trajs = _rollout(name, rec)
    # the driver batches each round over all 6 episodes: round k, row e is episode e's turn k
    assert len(rec.outputs) == 3 and all(len(call) == len(trajs) for call in rec.outputs)
    for e, traj in enumerate(trajs):
        sampled = [rec.outputs[k][e][0] for k in range(3)]
        assert _policy_runs(traj) == [s for s in sampled if s]  # every id as sampled, nothing more, nothing less
        first = tok.apply_chat_template([{"role": "system", "content": SYSTEM},
                                         {"role": "user", "content": f"what is the capital of france {e // 2}"}],
                                        tokenize=True, add_generation_prompt=True)
        assert traj.prompt_ids == _ids(first)
        assert len(traj.old_logprobs) == len(traj.response_ids)


def test_canonical_turns_rebuild_identically_so_the_scaffolding_is_the_templates(family):
    name, tok, _ = family
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    turns = [enc("paris is the capital") + [tok.eos_token_id], enc("the result of the lookup is ready"),
             enc("hello world") + [tok.eos_token_id]]
    traj = _rollout(name, Scripted(tok, turns), max_new_tokens=16, records=1, n=1)[0]
    traj.metadata["q"] = "what is the capital of france 0"
    assert traj.prompt_ids + traj.response_ids == _naive(tok, traj, [t for t in turns])


def test_naive_retokenisation_drifts_where_ours_does_not(family):
    name, tok, _ = family
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    hello = enc("hello")
    assert len(hello) == 1, "the corpus makes 'hello' one BPE token"
    split = [tok.convert_tokens_to_ids("h")] + enc("ello")  # a valid but non-canonical split the model may sample
    assert tok.decode(split) == "hello" and split != hello
    turns = [split + enc(" world") + [tok.eos_token_id], enc(" the result ") + [tok.eos_token_id]]
    traj = _rollout(name, Scripted(tok, turns), turns=2, max_new_tokens=16, records=1, n=1)[0]
    traj.metadata["q"] = "what is the capital of france 0"
    ours = traj.prompt_ids + traj.response_ids
    naive = _naive(tok, traj, turns)
    assert _policy_runs(traj) == turns
    at = _first_difference(ours, naive)
    assert ours != naive
    # the first difference is the sampled split, merged back into the canonical token by re-encoding
    assert ours[at:at + 2] == split[:2] and naive[at] == hello[0], (tok.convert_ids_to_tokens(ours[at:at + 3]),
                                                                      tok.convert_ids_to_tokens(naive[at:at + 3]))
    if name == "llama-3":  # the template trims the assistant text: the leading and trailing spaces vanish
        assert tok.decode(turns[1], skip_special_tokens=True) == " the result "
        assert "<|end_header_id|>\n\nthe result<|eot_id|>" in tok.decode(naive)
        assert "<|end_header_id|>\n\n the result <|eot_id|>" in tok.decode(ours)


def test_a_random_model_samples_ids_that_re_encoding_would_change(family):
    name, tok, gen = family
    rec = Recording(gen)
    trajs = _rollout(name, rec, max_new_tokens=12, records=3, n=2)
    changed_turns = drifted = 0
    for traj in trajs:
        runs = _policy_runs(traj)
        for ids in runs:
            body = [i for i in ids if i not in (tok.eos_token_id,)]
            if tok(tok.decode(body, skip_special_tokens=False), add_special_tokens=False)["input_ids"] != body:
                changed_turns += 1
        traj.metadata["q"] = f"what is the capital of france {traj.metadata['record_index']}"
        naive = _naive(tok, traj, runs)
        drifted += naive != traj.prompt_ids + traj.response_ids
    # most sampled turns of an untrained model are not canonical tokenisations of their own text
    assert changed_turns >= len(trajs), f"{changed_turns} re-encoded turns changed"
    assert drifted == len(trajs)
