"""A text-level multi-turn loop for agents that return text, not token ids: API teachers, endpoint judges acting
as agents, scripted oracles.

`play(agent, env_factory, records, max_turns)` runs one episode per record in lock-step: each round the agent gets
every active episode at once (so a batched or concurrent agent sees the whole round), each reply is cut after the
closing tag of its action (`shared.rollout.envs.parse_action` over the environment's tags), the environment steps,
and its observation is appended to the transcript. Episodes end on a final action (`done`, or the name the environment gives in
`info["finish"]`, e.g. a search budget), a reply without an action (`no_action`), an action the environment rejects (`invalid_action`, or, with `correction=`, the correction
text as the observation and the episode goes on), or `max_turns`. Rewards are the sum of the environment's step
rewards. Nothing here tokenises: for token-level RL rollouts use `AgentLoop`.

Agents are callables `agent(episodes) -> [text]` over the active `TextEpisode`s; two adapters are given:
`generator_agent` (any `shared.generation.Generator`, prompt + transcript as one prompt) and `chat_agent` (a
`shared.serving.ChatClient`, the episode as chat messages: assistant turns and observations as user messages).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.rollout.envs import Action, ActionError, Env, parse_action


@dataclass
class TextEpisode:
    """One episode: its record and environment, the transcript after the prompt, and each turn as
    {text, action, content, observation, reward, info, prefix} (prefix = the transcript up to the observation)."""

    record: Mapping[str, Any]
    env: Env
    transcript: str = ""
    turns: list[dict[str, Any]] = field(default_factory=list)
    answer: str | None = None
    finish: str = ""
    reward: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.record.get("id"), "transcript": self.transcript, "turns": self.turns,
                "answer": self.answer, "finish": self.finish, "reward": self.reward, "num_turns": len(self.turns)}


Agent = Callable[[list[TextEpisode]], list[str]]


def play(agent: Agent, env_factory: Callable[[Mapping[str, Any]], Env], records: Sequence[Mapping[str, Any]],
         max_turns: int = 8, starts: Sequence[str] | None = None, correction: str | None = None,
         before_step: Callable[[list[tuple[TextEpisode, Action]]], None] | None = None) -> list[TextEpisode]:
    """Play one episode per record (see module docstring). `starts[i]` is a transcript to resume episode i from
    (the environment is reset, not replayed: use it with stateless environments such as `SearchEnv`).
    `before_step(pairs)` sees each round's parsed actions before the environments step (e.g. to fetch every
    search of the round in one request)."""
    if max_turns < 1:
        raise ValueError(f"play needs max_turns >= 1, got {max_turns}")
    if starts is not None and len(starts) != len(records):
        raise ValueError(f"play got {len(starts)} start transcripts for {len(records)} records")
    episodes = []
    for i, record in enumerate(records):
        env = env_factory(record)
        env.reset(record)
        episodes.append(TextEpisode(record, env, starts[i] if starts is not None else ""))
    while True:
        active = [e for e in episodes if not e.finish]
        if not active:
            return episodes
        texts = agent(active)
        if len(texts) != len(active):
            raise ValueError(f"agent returned {len(texts)} turn(s) for {len(active)} active episode(s)")
        actions = [parse_action(t if isinstance(t, str) else "", e.env.tags) for e, t in zip(active, texts)]
        if before_step is not None:
            before_step([(e, a) for e, a in zip(active, actions) if a is not None])
        for episode, text, action in zip(active, texts, actions):
            _advance(episode, text if isinstance(text, str) else "", action, max_turns, correction)


def _advance(ep: TextEpisode, text: str, action: Action | None, max_turns: int, correction: str | None) -> None:
    if action is not None:
        end_tag = f"</{action.kind}>"  # drop anything written after the action's closing tag
        text = text[: text.rfind(end_tag) + len(end_tag)]
    ep.transcript += text
    turn: dict[str, Any] = {"text": text, "action": action.kind if action else None,
                            "content": action.content if action else None, "observation": "", "reward": 0.0,
                            "info": {}, "prefix": ep.transcript}
    ep.turns.append(turn)
    if action is None:
        ep.finish = "no_action"
        return
    try:
        result = ep.env.step(action)
    except ActionError as err:
        if correction is None:
            ep.finish = "invalid_action"
            turn["info"] = {"error": str(err)}
            return
        turn["observation"], turn["info"] = correction, {"error": str(err)}
        ep.transcript += correction
    else:
        turn["observation"], turn["reward"] = result.observation, float(result.reward)
        turn["info"] = {k: v for k, v in result.info.items() if k not in ("answer", "finish")}
        ep.reward += float(result.reward)
        ep.transcript += result.observation
        if result.done:  # an environment may name its own ending (e.g. "search_budget") in info["finish"]
            ep.finish = str(result.info.get("finish", "done"))
            ep.answer = result.info.get("answer", action.content if ep.finish == "done" else None)
            return
    if len(ep.turns) >= max_turns:
        ep.finish = "max_turns"


def generator_agent(generator: Any, prompt_fn: Callable[[Mapping[str, Any]], str], params: Any) -> Agent:
    """An agent over a `shared.generation.Generator`: prompt_fn(record) + transcript is the prompt, one completion
    (the first) per episode. Pass `params.stop` = the environment's closing tags so turns end at an action."""

    def agent(episodes: list[TextEpisode]) -> list[str]:
        prompts = [prompt_fn(e.record) + e.transcript for e in episodes]
        return [outs[0].text for outs in generator.generate(prompts, params)]

    return agent


def chat_agent(client: Any, prompt_fn: Callable[[Mapping[str, Any]], str], system: str | None = None,
               workers: int = 4, **sampling: Any) -> Agent:
    """An agent over a `shared.serving.ChatClient` (a teacher on an OpenAI-compatible endpoint): the episode so
    far as chat messages (`shared.generation.openai_chat.chat_messages`), the episodes of a round sent
    concurrently on at most `workers` threads. `sampling`: temperature, max_tokens, stop, seed."""
    from shared.generation.openai_chat import chat_messages

    if workers < 1:
        raise ValueError(f"chat_agent needs workers >= 1, got {workers}")

    def one(ep: TextEpisode) -> str:
        turns = [(t["text"], t["observation"]) for t in ep.turns]
        choice = client.chat(chat_messages(system, prompt_fn(ep.record), turns), **sampling)[0]
        stop = choice.stop_reason  # the chat API drops the matched stop string: put the closing tag back
        return choice.text + (stop if stop and stop in (sampling.get("stop") or ()) else "")

    def agent(episodes: list[TextEpisode]) -> list[str]:
        if len(episodes) == 1 or workers == 1:
            return [one(e) for e in episodes]
        with ThreadPoolExecutor(max_workers=min(workers, len(episodes))) as pool:
            return list(pool.map(one, episodes))

    return agent
