"""A `Generator` over any OpenAI-compatible chat endpoint, so an API model (or `shared.serving.ChatServer` on
loopback) can stand wherever a local generator does: a teacher agent, a judge, an evaluation baseline.

Each prompt becomes the chat messages `[system?, user: prompt]` (or whatever `messages_fn(prompt)` builds) and is
sent through `shared.serving.ChatClient` (retries, back-off, optional reply cache), several prompts at once on a
bounded thread pool. Mapping of the contract:
- `n`, `temperature`, `top_p`, `max_new_tokens` (-> max_tokens), `stop` and `seed` go into the request; `top_k`,
  `logprobs`, `top_logprobs` and `ignore_eos` have no chat-API field and are refused with a ValueError.
- The contract keeps a matched stop string in the text, the chat API drops it: when the server reports which stop
  string matched (`stop_reason`, as vLLM and `ChatServer` do) it is appended again; a server that does not report
  it (OpenAI) leaves the text without it. `finish_reason` is "stop" (a stop string), "eos" (the model ended) or
  "length".
- `token_ids` are the text re-encoded with `tokenizer` when one is given (never the server's own ids), else empty;
  token-id prompts need that tokenizer to be decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.generation.base import Completion, Prompts, SamplingParams, check_prompts
from shared.serving import ChatChoice, ChatClient


def choice_to_completion(choice: ChatChoice, params: SamplingParams, tokenizer: Any = None) -> Completion:
    """One chat choice as a `Completion` under the contract above."""
    text = choice.text
    if choice.finish_reason == "length":
        reason = "length"
    elif choice.stop_reason is not None and choice.stop_reason in params.stop:
        text, reason = text + choice.stop_reason, "stop"
    else:
        reason = "eos"
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None else []
    return Completion(text=text, token_ids=ids, finish_reason=reason)  # type: ignore[arg-type]


class OpenAIChatGenerator:
    """Generator protocol over a chat endpoint (`client`: a `ChatClient`, or a base URL plus `model`)."""

    def __init__(self, client: ChatClient | str, model: str | None = None, system: str | None = None,
                 tokenizer: Any = None, workers: int = 4,
                 messages_fn: Callable[[str], list[dict[str, str]]] | None = None, **client_options: Any) -> None:
        if isinstance(client, str):
            if not model:
                raise ValueError("OpenAIChatGenerator(base_url) needs model=")
            client = ChatClient(client, model, **client_options)
        if workers < 1:
            raise ValueError(f"OpenAIChatGenerator needs workers >= 1, got {workers}")
        self.client, self.system, self.tokenizer = client, system, tokenizer
        self.workers, self.messages_fn = workers, messages_fn

    def messages(self, prompt: str) -> list[dict[str, str]]:
        if self.messages_fn is not None:
            return self.messages_fn(prompt)
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": "user", "content": prompt}]

    @staticmethod
    def check_params(params: SamplingParams) -> None:
        unsupported = [name for name, off in (("top_k", params.top_k == 0), ("logprobs", not params.logprobs),
                                              ("top_logprobs", params.top_logprobs == 0),
                                              ("ignore_eos", not params.ignore_eos)) if not off]
        if unsupported:
            raise ValueError(f"OpenAIChatGenerator: {', '.join(unsupported)} cannot be sent to a chat endpoint")

    def generate(self, prompts: Prompts, params: SamplingParams) -> list[list[Completion]]:
        """Per prompt, `params.n` completions (requests run concurrently, results in prompt order)."""
        self.check_params(params)
        kind = check_prompts(prompts)
        if kind == "ids":
            if self.tokenizer is None:
                raise ValueError("OpenAIChatGenerator got token-id prompts but has no tokenizer to decode them")
            texts = [self.tokenizer.decode(list(p)) for p in prompts]
        else:
            texts = list(prompts)  # type: ignore[arg-type]

        def one(text: str) -> list[Completion]:
            choices = self.client.chat(self.messages(text), n=params.n, temperature=params.temperature,
                                       max_tokens=params.max_new_tokens, stop=params.stop or None, seed=params.seed,
                                       top_p=params.top_p if params.top_p < 1 else None)
            return [choice_to_completion(c, params, self.tokenizer) for c in choices]

        if len(texts) == 1 or self.workers == 1:
            return [one(t) for t in texts]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(texts))) as pool:
            return list(pool.map(one, texts))

    def update_weights(self, model_or_state_dict: Any) -> None:
        raise TypeError("OpenAIChatGenerator serves a remote endpoint: its weights cannot be updated from here")


def chat_messages(system: str | None, prompt: str, turns: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Messages of a multi-turn episode: system, the prompt as the user, then each (assistant turn, observation)
    with the observation as the next user message (empty observations are skipped)."""
    out = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": prompt})
    for text, observation in turns:
        out.append({"role": "assistant", "content": text})
        if observation:
            out.append({"role": "user", "content": observation})
    return out
