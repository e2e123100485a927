"""shared.serving (loopback chat server, client) and the OpenAI-chat Generator adapter, all on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request

import pytest
import torch
from shared.generation import SamplingParams
from shared.generation.openai_chat import OpenAIChatGenerator, chat_messages
from shared.serving import (
    ChatClient,
    ChatError,
    ChatServer,
    HttpResponse,
    LoopbackServer,
    ReplyError,
    ScriptedReplies,
    cut_before_stop,
    generator_reply,
    main,
    render_messages,
)


def echo(messages, params):
    """Deterministic stand-in: echoes the last user message, n times with the choice index."""
    text = messages[-1]["content"]
    return [f"{text} #{i}" for i in range(params["n"])] if params["n"] > 1 else f"echo: {text}"


def test_cut_before_stop_earliest_then_longest():
    assert cut_before_stop("a</search> b</answer>", ["</answer>", "</search>"]) == ("a", "</search>")
    assert cut_before_stop("abc", ["x"]) == ("abc", None)
    assert cut_before_stop("ab</s></search>", ["</s>", "</s></search>"]) == ("ab", "</s></search>")


def test_chat_server_replies_stops_counts_and_models():
    with ChatServer(echo, model="teacher") as server:
        client = ChatClient(server.url, "teacher")
        assert client.complete([{"role": "user", "content": "hi"}]) == "echo: hi"
        choices = client.chat([{"role": "user", "content": "<search>q</search> more"}], stop=["</search>"])
        assert choices[0].text == "echo: <search>q" and choices[0].stop_reason == "</search>"
        assert choices[0].finish_reason == "stop"
        many = client.chat([{"role": "user", "content": "x"}], n=3, temperature=1.0)
        assert [c.text for c in many] == ["x #0", "x #1", "x #2"]
        with urllib.request.urlopen(f"{server.url}/v1/models") as response:
            assert json.loads(response.read())["data"][0]["id"] == "teacher"
        assert server.count == 4 and len(server.chat_requests) == 3
        assert client.stats() == {"calls": 3, "http_requests": 3}


def test_chat_server_rejects_bad_requests_with_4xx():
    with ChatServer(echo) as server:
        client = ChatClient(server.url, "m", backoff_s=0.01)
        with pytest.raises(ChatError, match=r"HTTP 400.*messages\[0\] must be an object"):
            client.chat([{"role": "user", "content": 5}])
        request = urllib.request.Request(f"{server.url}/v1/nothing", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request)
        assert err.value.code == 404


def test_broken_reply_function_is_a_500_and_is_retried():
    def broken(messages, params):
        raise KeyError("oops")

    with ChatServer(broken) as server:
        with pytest.raises(ChatError, match=r"failed after 2 attempt\(s\): HTTP 500.*KeyError"):
            ChatClient(server.url, "m", max_retries=1, backoff_s=0.01).complete([{"role": "user", "content": "x"}])
        assert server.count == 2


def test_wrong_number_of_texts_is_a_server_error():
    with ChatServer(lambda m, p: ["one", "two"]) as server:
        with pytest.raises(ChatError, match="gave 2 text"):
            ChatClient(server.url, "m", max_retries=0).complete([{"role": "user", "content": "x"}])


def test_loopback_only():
    with pytest.raises(ValueError, match="only loopback hosts"):
        ChatServer(echo, host="0.0.0.0")
    with pytest.raises(ValueError, match="only loopback hosts"):
        LoopbackServer(lambda r: HttpResponse(), host="10.1.2.3")
    with pytest.raises(SystemExit) as err:
        main(["--model", "unused", "--host", "0.0.0.0"])
    assert err.value.code == 2


def test_scripted_replies_play_in_order_then_exhaust():
    script = ScriptedReplies(["a", ReplyError(503), lambda m, p: "from a callable"])
    params = {"n": 1}
    assert script([], params) == "a"
    with pytest.raises(ReplyError):
        script([], params)
    assert script([], params) == "from a callable"
    with pytest.raises(ReplyError, match="script exhausted"):
        script([], params)


def test_render_messages_without_and_with_template(tiny_tokenizer):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert render_messages(msgs) == "system: S\nuser: U\nassistant:"
    rendered = render_messages(msgs, tiny_tokenizer)
    assert rendered.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nU<|im_end|>" in rendered


def test_generator_adapter_maps_the_contract():
    with ChatServer(echo) as server:
        gen = OpenAIChatGenerator(server.url, model="m", system="be brief", workers=2)
        params = SamplingParams(max_new_tokens=7, temperature=0.0, stop=("</search>",), seed=5)
        outs = gen.generate(["<search>a</search>", "plain", "<search>c</search>"], params)
        sent = server.chat_requests
    assert [o[0].text for o in outs] == ["echo: <search>a</search>", "echo: plain", "echo: <search>c</search>"]
    assert [o[0].finish_reason for o in outs] == ["stop", "eos", "stop"]  # the stop string is put back
    assert all(o[0].token_ids == [] for o in outs)
    first = next(b for b in sent if b["messages"][-1]["content"] == "plain")
    assert first["messages"][0] == {"role": "system", "content": "be brief"}
    assert (first["max_tokens"], first["temperature"], first["seed"], first["stop"]) == (7, 0.0, 5, ["</search>"])
    with pytest.raises(ValueError, match="top_k, logprobs cannot be sent"):
        gen.generate(["x"], SamplingParams(max_new_tokens=2, top_k=5, logprobs=True))
    with pytest.raises(ValueError, match="no tokenizer to decode"):
        gen.generate([[1, 2]], params)
    with pytest.raises(TypeError, match="weights cannot be updated"):
        gen.update_weights({})


def test_generator_adapter_n_and_tokenizer(tiny_tokenizer):
    with ChatServer(echo) as server:
        gen = OpenAIChatGenerator(ChatClient(server.url, "m"), tokenizer=tiny_tokenizer)
        outs = gen.generate([tiny_tokenizer("ab")["input_ids"]], SamplingParams(max_new_tokens=4, n=2))
    assert [c.text for c in outs[0]] == ["ab #0", "ab #1"]
    assert outs[0][0].token_ids == tiny_tokenizer("ab #0", add_special_tokens=False)["input_ids"]


def test_chat_messages_layout():
    assert chat_messages("S", "P", [("t1", "o1"), ("t2", "")]) == [
        {"role": "system", "content": "S"}, {"role": "user", "content": "P"},
        {"role": "assistant", "content": "t1"}, {"role": "user", "content": "o1"},
        {"role": "assistant", "content": "t2"},
    ]


def test_local_hf_model_served_through_the_real_client(tiny_qwen2_dir):
    """A tiny HF model behind the chat server: the reply equals a direct greedy generation of the same prompt."""
    from shared.generation import HFGenerator
    from shared.modeling import load_model

    torch.manual_seed(0)
    model, tok = load_model(str(tiny_qwen2_dir), kind="causal", dtype="float32", device="cpu")
    local = HFGenerator(model, tok)
    messages = [{"role": "user", "content": "2+3="}]
    direct = local.generate([render_messages(messages, tok)], SamplingParams(max_new_tokens=6, temperature=0.0))
    with ChatServer(generator_reply(local)) as server:
        served = ChatClient(server.url, "tiny", max_tokens=6).complete(messages)
    assert served == direct[0][0].text
