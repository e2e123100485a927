"""Protocol rules and episode scoring on hand-built transcripts (character tokenizer: one token per character)."""

import math

import pytest
from arr.config import RewardSettings
from arr.protocol import (
    EARLY_FINAL_CORRECTION,
    REASONER,
    VERIFIER,
    ProtocolOptions,
    episode_program,
    format_docs,
    parse_reasoner_turn,
    parse_verifier_reply,
    raw_information,
    reasoner_information,
    verifier_information,
)
from arr.rewards import ENTROPY_HELP, score_episode
from arr.warmstart import ScriptedGenerator
from shared.rollout.driver import MultiRoleDriver
from shared.rollout.trajectory import Trajectory, TrajectoryError


def test_verifier_validity_rules():
    ok = parse_verifier_reply("<verify>v</verify><selected_doc>Doc 2</selected_doc><response>r</response>", 3, False)
    assert ok.valid and ok.accepted and ok.doc_index == 2
    reject = parse_verifier_reply("<verify>v</verify><response>no</response>", 3, False)
    assert reject.valid and not reject.accepted  # no <selected_doc> = a rejection
    bad_doc = parse_verifier_reply("<verify>v</verify><selected_doc>Doc 4</selected_doc><response>r</response>", 3,
                                   False)
    assert not bad_doc.valid and bad_doc.doc_index is None and "Doc 4" in bad_doc.reason
    no_response = parse_verifier_reply("<verify>v</verify><selected_doc>Doc 1</selected_doc>", 3, False)
    assert not no_response.valid
    early = parse_verifier_reply("<verify>v</verify><final_answer>x</final_answer>", 3, False)
    assert not early.valid and early.final_answer == "x"
    final = parse_verifier_reply("<verify>v</verify><final_answer>x</final_answer>", 0, True)
    assert final.valid and final.final_answer == "x"
    truncated = parse_verifier_reply("<verify>v</verify><response>cut he", 3, False)
    assert not truncated.valid and truncated.response is None


def test_reasoner_validity_rules():
    first = parse_reasoner_turn("<think>a</think><search>q</search>", first=True)
    assert first.valid and first.kind == "search" and first.content == "q" and first.think == "a"
    later = parse_reasoner_turn("<verify>no</verify><think>a</think><answer>x</answer>", first=False)
    assert later.valid and later.kind == "answer"
    assert not parse_reasoner_turn("<search>q</search>", first=True).valid  # no think first
    assert not parse_reasoner_turn("<think>a</think><search>q</search>", first=False).valid  # verify first
    cut = parse_reasoner_turn("<think>a</think><sear", first=True)
    assert cut.kind is None and not cut.valid


def test_observations_list_what_exists():
    docs = [{"id": "a", "contents": '"T"\nbody'}]
    assert format_docs(docs) == 'Doc 1(Title: "T") body'
    assert format_docs([]) == "No documents."
    reply = parse_verifier_reply("<verify>v</verify><selected_doc>Doc 1</selected_doc><response>r</response>", 1,
                                 False)
    assert reasoner_information(reply, docs) == '\n<information>Doc 1(Title: "T") body\nr</information>\n'
    bad = parse_verifier_reply("garbage", 1, False)
    assert reasoner_information(bad, docs) == raw_information(docs)  # the release's fallback


def _scripted(tok, turns):
    """A generator replying with the next text of `turns` (one list per call, in order)."""
    it = iter(turns)
    return ScriptedGenerator(tok, lambda context: next(it))


def _run(tok, record, evidence, reasoner_turns, verifier_turns, **opts):
    gens = {REASONER: _scripted(tok, reasoner_turns)}
    if verifier_turns is not None:
        gens[VERIFIER] = _scripted(tok, verifier_turns)
    opts = {"reasoner_tokens": 200, "verifier_tokens": 200, **opts}  # one token per character
    options = ProtocolOptions(verifier=verifier_turns is not None, **opts)
    return MultiRoleDriver(gens).run(episode_program(evidence, options), [record], n=1)


def test_masks_counted_by_hand(char_tok, record, evidence):
    r1, r2 = "<think>K</think><search>q</search>", "<verify>yes</verify><think>L</think><answer>Lomiville</answer>"
    v1 = "<verify>ok</verify><selected_doc>Doc 1</selected_doc><response>born in Lomiville</response>"
    v2 = "<verify>Lomiville</verify><final_answer>Lomiville</final_answer>"
    run = _run(char_tok, record, evidence(), [r1, r2], [v1, v2])
    reasoner, verifier = run[REASONER][0], run[VERIFIER][0]
    docs = evidence().search(record, "q")[0]
    obs_r = reasoner_information(parse_verifier_reply(v1, 3, False), docs)
    obs_v = verifier_information("K", "q", docs)
    answer_obs = "\n<answer>Lomiville</answer>\n"
    # reasoner: its two turns trainable, the whole <information>{verifier reply}</information> masked
    assert reasoner.loss_mask == [1] * len(r1) + [0] * len(obs_r) + [1] * len(r2)
    # verifier: the documents and the reasoner's answer masked, its two replies trainable
    assert verifier.loss_mask == [0] * len(obs_v) + [1] * len(v1) + [0] * len(answer_obs) + [1] * len(v2)
    log = run.episodes[0].result
    assert (log.answer, log.verifier_answer, log.turns, log.finish) == ("Lomiville", "Lomiville", 2, "answer")
    assert log.verdicts[0]["accepted"] and log.verdicts[0]["hop_in_docs"]
    assert reasoner.group_key == ("q1", REASONER) and verifier.group_key == ("q1", VERIFIER)


def test_turn_cap_and_early_final_answer(char_tok, record, evidence):
    search = "<think>K</think><search>q</search>"
    later = "<verify>no</verify><think>K</think><search>q</search>"
    early = "<verify>v</verify><final_answer>Lomiville</final_answer>"
    run = _run(char_tok, record, evidence(), [search] + [later] * 4, [early] * 4)
    log = run.episodes[0].result
    assert log.finish == "max_turns" and log.turns == 5 and log.answer is None
    assert log.early_final == 4 and log.invalid_verifier == 4
    assert run[REASONER][0].finish_reason == "max_turns"
    verifier_text = run[VERIFIER][0].text
    assert verifier_text.count(EARLY_FINAL_CORRECTION) == 4  # the corrective line, counted
    assert "<information>Doc 1(Title:" in run[REASONER][0].text  # the reasoner got the raw documents instead


def _hand_trajectory(tok, pieces):
    """A trajectory from (text, policy, entropy per token) pieces."""
    t = Trajectory(prompt_ids=tok("P", add_special_tokens=False)["input_ids"])
    for text, policy, ent in pieces:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text)
        t.append(ids, policy=policy, entropies=[ent(i, text) for i in range(len(ids))] if policy else None)
        t.text += text
    return t


def _span_entropy(tag: str, value: float):
    """Entropy `value` on the content characters of <tag>...</tag>, 0 elsewhere."""
    def fn(i, text):
        start = text.find(f"<{tag}>")
        lo, hi = start + len(tag) + 2, text.find(f"</{tag}>")
        return value if start >= 0 and lo <= i < hi else 0.0
    return fn


INFO = '\n<information>Reasoning: K\nQuery: q\nDoc 1(Title: "K") K was born in Lomiville.</information>\n'


def _episode(tok, response="<response>Lomiville</response>", info=INFO):
    reasoner = _hand_trajectory(tok, [
        ("<think>a</think><search>q</search>", True, _span_entropy("think", 1.2)),
        ("\n<information>x</information>\n", False, None),
        ("<verify>v</verify><think>b</think><search>q</search>", True, _span_entropy("think", 0.9)),
        ("\n<information>x</information>\n", False, None),
        ("<verify>v</verify><think>c</think><answer>Lomiville big town</answer>", True, _span_entropy("think", 0.5)),
    ])
    reply = f"<verify>x</verify><selected_doc>Doc 1</selected_doc>{response}"
    verifier = _hand_trajectory(tok, [
        (info, False, None),
        (reply, True, _span_entropy("response", 0.4)),
        ("\n<answer>Lomiville big town</answer>\n", False, None),
        ("<verify>Lomiville</verify><final_answer>Lomiville</final_answer>", True, _span_entropy("verify", 0.2)),
    ])
    return reasoner, verifier, len(info)


def test_episode_scores_by_hand(char_tok):
    reasoner, verifier, off = _episode(char_tok)
    s = score_episode(reasoner, verifier, ["Lomiville"], char_tok, RewardSettings())
    assert s.f1_reasoner == 0.5 and s.f1_verifier == 1.0  # 3 predicted tokens, 1 shared: 2/(3+1)
    assert (s.bonus_reasoner, s.bonus_verifier) == (0.0, 2.0)  # bins 2 vs 4
    assert s.reasoner_total == 0.5 and s.verifier_total == 3.0
    assert s.gold_seen and s.impact == 1.0  # think means 1.2 > 0.9 > 0.5: decreasing
    assert s.multipliers == [-1, 1, 1]  # verify "x" drops the gold; the response and the final verify hold it
    r = s.token_rewards
    verify1 = off + len("<verify>")
    assert r[verify1] == pytest.approx(-0.5)  # 0.5 x (-exp(0)) x 1.0
    response = off + len("<verify>x</verify><selected_doc>Doc 1</selected_doc><response>")
    assert [round(x, 6) for x in r[response:response + 9]] == [0.335160] * 9  # 0.5 x exp(-0.4) x 1.0
    assert r[response + 9] == 0.0 and r[response - 1] == 0.0  # tags and other tokens get nothing
    final_verify = len(verifier.response_ids) - len("Lomiville</verify><final_answer>Lomiville</final_answer>")
    assert r[final_verify] == pytest.approx(0.5 * math.exp(-0.2))
    assert sum(1 for x in r if x != 0.0) == 1 + 9 + 9


def test_no_gold_in_documents_gives_zero_process_reward(char_tok):
    reasoner, verifier, _ = _episode(char_tok, info=INFO.replace("Lomiville", "Pofeville"))
    s = score_episode(reasoner, verifier, ["Lomiville"], char_tok, RewardSettings())
    assert not s.gold_seen and s.impact == 0.0 and set(s.token_rewards) == {0.0}
    assert s.verifier_total == 3.0  # the outcome terms stay


def test_unclosed_response_scores_zero_without_crash(char_tok):
    reasoner, verifier, off = _episode(char_tok, response="<response>Lomiville")
    s = score_episode(reasoner, verifier, ["Lomiville"], char_tok, RewardSettings())
    response = off + len("<verify>x</verify><selected_doc>Doc 1</selected_doc><response>")
    assert s.token_rewards[response:response + 9] == [0.0] * 9
    assert s.multipliers == [-1, 1]  # only the closed spans are scored


def test_process_weight_zero_and_reasoner_alone(char_tok):
    reasoner, verifier, _ = _episode(char_tok)
    assert set(score_episode(reasoner, verifier, ["Lomiville"], char_tok, RewardSettings(w_ver=0.0)).token_rewards) \
        == {0.0}
    alone = score_episode(reasoner, None, ["Lomiville"], char_tok, RewardSettings())
    assert alone.f1_reasoner == 0.5 and alone.f1_verifier is None and alone.token_rewards == []


def test_missing_entropies_is_one_clear_error(char_tok):
    reasoner, verifier, _ = _episode(char_tok)
    verifier.entropies = None
    with pytest.raises(ValueError, match="arr's process reward needs per-token entropies"):
        score_episode(reasoner, verifier, ["Lomiville"], char_tok, RewardSettings())
    assert "entropy=True" in ENTROPY_HELP


def test_entropy_length_mismatch_is_a_trajectory_error():
    t = Trajectory(prompt_ids=[1])
    with pytest.raises(TrajectoryError, match="entropies"):
        t.append([2, 3, 4], policy=True, entropies=[0.1, 0.2])


def test_generator_without_entropies_fails_in_the_episode(char_tok, record, evidence):
    class NoEntropy(ScriptedGenerator):
        def generate(self, prompts, params):
            out = super().generate(prompts, params)
            for c in out:
                c[0].entropies = None
            return out

    gens = {REASONER: NoEntropy(char_tok, lambda c: "<think>K</think><answer>x</answer>"),
            VERIFIER: NoEntropy(char_tok, lambda c: "<verify>v</verify><final_answer>x</final_answer>")}
    with pytest.raises(ValueError, match="per-token entropies"):
        MultiRoleDriver(gens).run(episode_program(evidence(), ProtocolOptions()), [record], n=1)


def test_missing_role_trajectory_is_a_clear_error(char_tok, record, evidence):
    from arr.config import ARRConfig
    from arr.train import score_rollout

    run = _run(char_tok, record, evidence(), ["<think>K</think><answer>Lomiville</answer>"], None)
    with pytest.raises(ValueError, match="no verifier trajectory"):
        score_rollout(ARRConfig(), run, char_tok, verifier=True)
