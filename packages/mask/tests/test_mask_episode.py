"""The loop through the real lock-step driver with scripted replies: one sample per call with its reward, context
per call counted by hand, the overflow policies, the fallback actions, and the oracle solving KB questions."""

import pytest
from mask.episode import mask_loop, prompt_ids, run_episodes
from mask.oracle import oracle_episode
from mask.rewards import answer_score
from mask.roles import NO_INFO

RECORD = {"id": "h1", "question": "Who?", "golden_answers": ["Alpha Beta"]}
DOCS = [{"id": "d1", "contents": '"Alpha"\nAlpha Beta lives here.'}]
HAND = ["<q1>Who?</q1><a1>unkown</a1><final_answer>unkown</final_answer>",
        "<search>who</search>", "<evidence>Alpha Gamma</evidence>", "<Add>t2</Add>",
        "<final_answer>Alpha Gamma</final_answer>",
        "<search>who really</search>", "<evidence>Alpha Beta</evidence>", "<Update>t2</Update>",
        "<final_answer>Alpha Beta</final_answer>",
        "<end>"]


def _run(cfg, tok, scripted, replies, records=(RECORD,), retrieve=lambda q: DOCS, **kw):
    gen = scripted(tok, replies)
    trajs, logs = run_episodes(gen, list(records), cfg, retrieve, n=1, temperature=1.0, seed=0, **kw)
    return gen, trajs, logs


def test_hand_made_episode_through_the_driver(cfg, char_tok, scripted):
    gen, trajs, logs = _run(cfg, char_tok, scripted, HAND)
    log = logs[0]
    assert [c.role for c in log.calls] == ["plan"] + ["search", "summary", "update", "answer"] * 2 + ["search"]
    assert all(c.legal for c in log.calls) and log.iterations == 2 and log.answer == "Alpha Beta"
    assert log.memory["slots"] == {"t1": ["Who?", "unkown"], "t2": ["who really", "Alpha Beta"]}
    # one single-turn trajectory per call, its reward on its last token (the table of the design note)
    by_call = sorted(trajs, key=lambda t: (t.metadata["iteration"], ["plan", "search", "summary", "update",
                                                                      "answer"].index(t.metadata["role"])))
    assert [t.reward for t in by_call] == pytest.approx([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0])
    for t in trajs:
        assert t.loss_mask == [1] * len(t.response_ids) and t.dense_rewards()[-1] == pytest.approx(t.reward)
        assert t.group_key == ("h1", t.metadata["role"], t.metadata["iteration"])
    # every call's prompt is rebuilt from the memory: the answer prompt of iteration 2, counted by hand on the char
    # tokenizer (one token per character)
    answer2 = "[answer]\nQuestion: Who?\nMemory:\nt1: Q: Who? | A: unkown\nt2: Q: who really | A: Alpha Beta\n"
    assert gen.prompts[8] == answer2
    assert log.calls[8].prompt_tokens == len(answer2) == len(by_call[8].prompt_ids)


def test_illegal_outputs_take_the_fallbacks(cfg, char_tok, scripted):
    replies = ["no plan", "<search>who</search>", "   ", "<Update>t9</Update>", "maybe Alpha", " "]
    _, trajs, logs = _run(cfg, char_tok, scripted, replies)
    calls = logs[0].calls
    assert [c.legal for c in calls] == [False, True, False, False, False, False]
    assert calls[2].evidence == NO_INFO and (calls[3].action, calls[3].target) == ("add", "t2")
    assert calls[4].answer == "" and calls[5].action == "end"
    assert [t.reward for t in sorted(trajs, key=lambda t: (t.metadata["iteration"], t.metadata["call"]))] == \
        pytest.approx([-1.0, 0.0, -1.0, -1.0, -1.0, -1.0])


def test_zero_documents_say_so(cfg, char_tok, scripted):
    gen, _, logs = _run(cfg, char_tok, scripted, HAND[:3] + ["<Add>t2</Add>", "<final_answer>x</final_answer>",
                                                            "<end>"], retrieve=lambda q: [])
    assert "Documents:\n(no documents)\n" in gen.prompts[2]
    assert logs[0].calls[2].evidence == "Alpha Gamma"


def test_overflow_policies(cfg, char_tok, scripted):
    text = "x" * 50
    assert prompt_ids(char_tok, text, 60, "error", "ep")[1] is False
    with pytest.raises(ValueError, match="ep: prompt of 50 tokens exceeds prompt.max_tokens=40"):
        prompt_ids(char_tok, text, 40, "error", "ep")
    left, over = prompt_ids(char_tok, "a" * 10 + "b" * 40, 40, "left", "ep")
    assert over and char_tok.decode(left) == "b" * 40
    right, _ = prompt_ids(char_tok, "a" * 10 + "b" * 40, 40, "release_right", "ep")
    assert char_tok.decode(right) == "a" * 10 + "b" * 30
    with pytest.raises(ValueError, match="prompt.overflow"):
        prompt_ids(char_tok, text, 40, "truncate", "ep")
    # finish: an overflowing call is not generated; it acts as an empty (illegal) output and is counted
    cfg.prompt.max_tokens, cfg.prompt.overflow = 10, "finish"
    gen, trajs, logs = _run(cfg, char_tok, scripted, [])
    calls = logs[0].calls
    assert [c.role for c in calls] == ["plan", "search"] and all(c.overflow and not c.legal for c in calls)
    assert trajs == [] and gen.prompts == []
    cfg.prompt.overflow = "error"
    with pytest.raises(ValueError, match=r"episode 0 \(record 'h1'\) role plan: prompt of"):
        _run(cfg, char_tok, scripted, [])


def test_oracle_solves_kb_questions(cfg, small_kb):
    for q in small_kb["questions"]:
        records, log = oracle_episode(q, small_kb["retrieve"], cfg)
        assert answer_score(log.answer, q["golden_answers"]) == 1.0
        assert all(c.legal for c in log.calls)
        assert len(records) == 4 * q["hops"] + 2 and log.iterations == q["hops"]


def test_oracle_keep_plan_updates_the_plan_slots(cfg, small_kb):
    cfg.memory.after_plan = "keep_plan"
    q = next(q for q in small_kb["questions"] if q["hops"] == 2)
    records, log = oracle_episode(q, small_kb["retrieve"], cfg)
    updates = [r["completion"] for r in records if r["role"] == "update"]
    assert updates == ["<Update>t1</Update>", "<Update>t2</Update>"] and log.answer == q["golden_answers"][0]


def test_oracle_replies_drive_the_batched_driver(cfg, char_tok, scripted, small_kb):
    """The driver's lock-step rounds see exactly the prompts of the oracle loop and end with the same answers."""
    qs = small_kb["questions"][:4]
    for role in ("plan", "search", "summary", "answer"):  # the char tokenizer spells words out
        setattr(cfg.loop, f"{role}_tokens", 300)
    replies = {}
    for q in qs:
        for r in oracle_episode(q, small_kb["retrieve"], cfg)[0]:
            replies[r["prompt"]] = r["completion"]
    _, trajs, logs = _run(cfg, char_tok, scripted, lambda prompt: replies[prompt], records=qs,
                          retrieve=small_kb["retrieve"])
    assert [log.answer for log in logs] == [q["golden_answers"][0] for q in qs]
    assert len(trajs) == sum(4 * q["hops"] + 2 for q in qs)


def test_loop_is_a_plain_generator(cfg):
    loop = mask_loop(RECORD, lambda q: DOCS, cfg)
    call = next(loop)
    assert call.role == "plan" and call.prompt == "[plan]\nQuestion: Who?\n"
    call = loop.send("<final_answer>Alpha Beta</final_answer>")
    assert call.role == "search" and "t1: Q: Who? | A: Alpha Beta" in call.prompt
    with pytest.raises(StopIteration) as stop:
        loop.send("<end>")
    assert stop.value.value.answer == "Alpha Beta"  # the EpisodeLog the loop returns


def test_monolithic_context_counts_by_hand(cfg, char_tok, scripted, small_kb):
    """The monolithic agent's context at turn 2 = prompt + turn 1 + observation 1 (char tokenizer: one token per
    character, one per tag)."""
    from mask.baseline import prompt_text, turn_contexts
    from mask.baseline import run_episodes as run_monolithic
    from mask.evaluate import monolithic_episode_stats

    q = small_kb["questions"][0]
    sub = q["sub_questions"][0]["question"]
    gen = scripted(char_tok, [f"<search>{sub}</search>", f"<answer>{q['golden_answers'][0]}</answer>"])
    cfg.monolithic.max_new_tokens_per_turn = 200
    (traj,) = run_monolithic(cfg, gen, small_kb["retriever"], [q], n=1, temperature=1.0, seed=0)
    prompt = prompt_text(cfg, q["question"])
    turn1 = 1 + len(sub) + 1  # <search>, the query's characters, </search>
    observation = gen.prompts[1][len(prompt) + len(f"<search>{sub}</search>"):]
    assert observation.startswith("\n\n<information>Doc 1(Title: ") and observation.endswith("</information>\n\n")
    n_obs = len(observation) - (len("<information>") - 1) - (len("</information>") - 1)  # each tag is one token
    assert turn_contexts(traj) == [len(prompt), len(prompt) + turn1 + n_obs]
    assert traj.reward == 1.0 and traj.loss_mask.count(0) == n_obs
    stats = monolithic_episode_stats([traj], [q])
    assert stats["context_curve"] == {1: len(prompt), 2: len(prompt) + turn1 + n_obs}
    assert stats["f1"] == 1.0 and stats["mean_iterations"] == 1.0
