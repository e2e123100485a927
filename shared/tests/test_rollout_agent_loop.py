"""AgentLoop on scripted generators: exact masks and turn spans of a 3-turn episode, no re-tokenisation,
corrective observations, budgets; environments and action parsing."""

import pytest
from shared.generation import Completion
from shared.modeling.tiny import build_tokenizer
from shared.rollout.agent_loop import AgentLoop, encode_prompt, generate_trajectories
from shared.rollout.envs import Action, ActionError, SearchEnv, ToolEnv, parse_action, parse_tool_call


class ScriptedGenerator:
    """Returns the next scripted turn text for every episode; records the token ids it was asked to continue."""

    def __init__(self, tokenizer, turns):
        self.tokenizer = tokenizer
        self.turns = list(turns)
        self.calls = []

    def generate(self, prompts, params):
        self.calls.append([list(p) for p in prompts])
        text = self.turns.pop(0)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        lps = [-0.01 * (i + 1) for i in range(len(ids))]
        reason = "stop" if any(text.endswith(s) for s in params.stop) else "length"
        return [[Completion(text=text, token_ids=list(ids), logprobs=lps, finish_reason=reason)] for _ in prompts]

    def update_weights(self, model):
        pass


class FakeRetriever:
    def __init__(self):
        self.queries = []

    def retrieve(self, queries, topk=3):
        self.queries += queries
        return [[{"id": "d1", "contents": "France\nParis is the capital.", "score": 1.0}] for _ in queries]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(kind="char")


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_three_turn_episode_masks_spans_and_no_retokenisation(tok):
    t1, t2, t3 = "<search>france</search>", "hmm", "<answer>Paris</answer>"
    gen = ScriptedGenerator(tok, [t1, t2, t3])
    retriever = FakeRetriever()
    reward = lambda ans, rec: float(ans == rec["answer"])  # noqa: E731
    loop = AgentLoop(gen, lambda rec: SearchEnv(retriever, topk=1, answer_reward=reward), max_turns=4)
    [traj] = loop.run([{"id": "q1", "prompt": "Q: capital?\n", "answer": "Paris"}])

    obs1 = "\n\n<information>Doc 1(Title: France) Paris is the capital.</information>\n\n"
    obs2 = "\nInvalid action: write <search>...</search> or <answer>...</answer>.\n"
    pieces = [(t1, 1), (obs1, 0), (t2, 1), (obs2, 0), (t3, 1)]
    expected_ids, expected_mask = [], []
    for text, m in pieces:
        ids = _ids(tok, text)
        expected_ids += ids
        expected_mask += [m] * len(ids)
    assert traj.response_ids == expected_ids
    assert traj.loss_mask == expected_mask
    a, o1, b, o2, c = (len(_ids(tok, p)) for p, _ in pieces)
    assert traj.turn_spans == [(0, a), (a + o1, a + o1 + b), (a + o1 + b + o2, a + o1 + b + o2 + c)]
    assert traj.turn_rewards == [0.0, 0.0, 1.0]
    assert traj.text == t1 + obs1 + t2 + obs2 + t3
    assert traj.finish_reason == "answer" and traj.metadata["answer"] == "Paris"
    assert traj.metadata["invalid_actions"] == 1 and traj.metadata["num_turns"] == 3
    assert retriever.queries == ["france"]
    # each call continued exactly from prompt ids + the ids produced so far (never re-tokenised text)
    prompt = _ids(tok, "Q: capital?\n")
    assert gen.calls[0] == [prompt]
    assert gen.calls[1] == [prompt + expected_ids[: a + o1]]
    assert gen.calls[2] == [prompt + expected_ids[: a + o1 + b + o2]]
    # sampling logprobs kept on policy tokens, zeros on observations
    assert traj.old_logprobs[:a] == [-0.01 * (i + 1) for i in range(a)]
    assert traj.old_logprobs[a : a + o1] == [0.0] * o1
    assert traj.dense_rewards()[-1] == 1.0


def test_turn_and_token_budgets(tok):
    gen = ScriptedGenerator(tok, ["<search>x</search>"] * 3)
    loop = AgentLoop(gen, lambda rec: SearchEnv(FakeRetriever()), max_turns=2)
    [traj] = loop.run([{"prompt": "Q"}])
    assert traj.finish_reason == "max_turns" and len(traj.turn_spans) == 2
    # the last turn's observation is not appended once the episode ends
    assert traj.loss_mask[-1] == 1

    gen = ScriptedGenerator(tok, ["<search>x</search>"] * 3)
    loop = AgentLoop(gen, lambda rec: SearchEnv(FakeRetriever()), max_turns=5, max_response_tokens=25)
    [traj] = loop.run([{"prompt": "Q"}])
    assert len(traj.response_ids) == 25 and traj.finish_reason == "length"
    assert traj.loss_mask[:18] == [1] * 18 and traj.loss_mask[18:] == [0] * 7


def test_n_samples_share_group_and_encode_prompt(tok):
    gen = ScriptedGenerator(tok, ["<answer>1</answer>"])
    loop = AgentLoop(gen, lambda rec: SearchEnv(FakeRetriever()))
    trajs = loop.run([{"prompt": "a"}, {"prompt": "b"}], n=2, group_ids=[7, 8])
    assert [t.group_id for t in trajs] == [7, 7, 8, 8]
    assert encode_prompt(tok, {"prompt_ids": [3, 4]}) == [3, 4]
    with pytest.raises(KeyError, match="has no field 'prompt'"):
        encode_prompt(tok, {"id": "r9", "question": "x"})
    with pytest.raises(ValueError, match="1 group_ids for 2 records"):
        loop.run([{"prompt": "a"}, {"prompt": "b"}], group_ids=[1])


def test_single_turn_generate_trajectories(tok):
    gen = ScriptedGenerator(tok, ["12\\boxed{3}"])
    [t] = generate_trajectories(gen, [{"prompt": "Q: 1+2=?\nA: "}], 1, params=type("P", (), {"stop": ()})())
    assert t.loss_mask == [1] * len("12\\boxed{3}") and t.turn_spans == [(0, len("12\\boxed{3}"))]
    assert t.text == "12\\boxed{3}" and t.prompt_ids == _ids(tok, "Q: 1+2=?\nA: ")


def test_parse_action_and_tool_call():
    assert parse_action("x <search>a</search> <answer> 4 </answer>", ("search", "answer")) == Action(
        "answer", "4", "x <search>a</search> <answer> 4 </answer>")
    assert parse_action("<search>unclosed", ("search",)) is None
    assert parse_tool_call('{"name": "add", "arguments": {"a": 1}}') == {"name": "add", "arguments": {"a": 1}}
    assert parse_tool_call('{"name": "add", "arguments": "{\\"a\\": 1}"}')["arguments"] == {"a": 1}
    for bad, msg in [("{oops", "not valid JSON"), ("[1]", "JSON object"), ('{"arguments": {}}', "'name'"),
                     ('{"name": "f", "arguments": 3}', "'arguments' must be a JSON object")]:
        with pytest.raises(ActionError, match=msg):
            parse_tool_call(bad)


def test_tool_env_python_tools_sandbox_and_errors():
    env = ToolEnv({"add": lambda a, b: a + b, "mul": "def mul(a, b):\n    return a * b\n"})
    env.reset({})
    turn = ('<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
            '<tool_call>{"name": "mul", "arguments": {"a": 4, "b": 5}}</tool_call>'
            '<tool_call>{bad json}</tool_call><tool_call>{"name": "nope"}</tool_call>')
    res = env.step(parse_action(turn, env.tags))
    assert not res.done
    assert "<tool_response>\n5\n</tool_response>" in res.observation
    assert "<tool_response>\n20\n</tool_response>" in res.observation  # ran in shared.sandbox
    assert "error: tool call is not valid JSON" in res.observation
    assert "error: unknown tool 'nope'" in res.observation
    assert [c.get("status") for c in res.info["calls"]] == ["ok", "ok", None, "error"]
    bad_args = env.step(parse_action('<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>', env.tags))
    assert "error: tool 'add'" in bad_args.observation
    done = env.step(Action("answer", "20", ""))
    assert done.done and done.info["answer"] == "20"
    with pytest.raises(TypeError, match="retrieve"):
        SearchEnv(object())


def test_search_env_reads_search_service_hits():
    """SearchClient returns Search-R1 hits {"document": {...}, "score"}; the env must show their text and ids."""
    from shared.retrieval import Retriever, SearchClient, SearchServer

    docs = [{"id": "d1", "contents": "Paris\nCapital of France."}, {"id": "d2", "contents": "Rome\nCapital of Italy."}]
    with SearchServer(Retriever("bm25", docs)) as server:
        env = SearchEnv(SearchClient(server.url), topk=1)
        env.reset({})
        result = env.step(Action("search", "capital of France", "<search>capital of France</search>"))
    assert result.info["doc_ids"] == ["d1"]
    assert "Doc 1(Title: Paris) Capital of France." in result.observation


def test_tool_env_turns_a_tool_exception_into_an_error_observation():
    """A trusted tool that raises (here ValueError for an unknown city) must not end the rollout."""

    def weather(city: str) -> str:
        if city != "Paris":
            raise ValueError(f"unknown city {city!r}")
        return "sunny"

    env = ToolEnv({"weather": weather})
    env.reset({})
    raw = '<tool_call>{"name": "weather", "arguments": {"city": "Atlantis"}}</tool_call>'
    result = env.step(Action("tool_call", raw[11:-12], raw))
    assert "ValueError: unknown city 'Atlantis'" in result.observation
    assert result.info["calls"][0]["status"] == "error" and not result.done


def test_search_env_template_docs_and_query_fn():
    retriever = FakeRetriever()
    env = SearchEnv(retriever, topk=1, observation_template="\n<evidence q='{query}'>{docs}</evidence>\n",
                    query_fn=lambda record, query: f"{record['question']} {query}")
    env.reset({"question": "Capital of France?"})
    result = env.step(Action("search", "capital", "<search>capital</search>"))
    assert retriever.queries == ["Capital of France? capital"]  # rewritten per episode before retrieval
    assert result.observation == "\n<evidence q='capital'>Doc 1(Title: France) Paris is the capital.</evidence>\n"
    assert result.info["docs"] == [{"id": "d1", "contents": "France\nParis is the capital.", "score": 1.0}]
    assert result.info["query"] == "capital" and result.info["retrieval_query"] == "Capital of France? capital"
    empty = env.step(Action("search", "", "<search></search>"))
    assert empty.observation == "\n<evidence q=''>Empty search query.</evidence>\n" and empty.info["docs"] == []
    plain = SearchEnv(FakeRetriever(), topk=1)  # the default stays Search-R1's wrapper
    plain.reset({})
    assert plain.step(Action("search", "x", "")).observation.startswith("\n\n<information>Doc 1(Title: France)")
    with pytest.raises(ValueError, match="must contain {docs}"):
        SearchEnv(FakeRetriever(), observation_template="<information></information>")
    bad = SearchEnv(FakeRetriever(), query_fn=lambda record, query: None)
    bad.reset({})
    with pytest.raises(TypeError, match="query_fn must return a string"):
        bad.step(Action("search", "x", ""))
