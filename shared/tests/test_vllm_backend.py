"""Tests for shared.generation.vllm: output conversion (pure, always runs) and a live engine test when vLLM can start."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
from shared.generation import SamplingParams, VLLMGenerator
from shared.generation.vllm import completion_from_vllm


def _out(text, token_ids, finish_reason, stop_reason=None, logprobs=None):
    return SimpleNamespace(text=text, token_ids=token_ids, finish_reason=finish_reason, stop_reason=stop_reason,
                           logprobs=logprobs)


def test_conversion_of_logprobs_and_reasons():
    lp = [{5: SimpleNamespace(logprob=-0.1), 7: SimpleNamespace(logprob=-2.5)},
          {9: SimpleNamespace(logprob=-1.5), 5: SimpleNamespace(logprob=-0.4)}]
    params = SamplingParams(max_new_tokens=2, logprobs=True, top_logprobs=2)
    comp = completion_from_vllm(_out("ab", [5, 9], "length", logprobs=lp), params, [1, 2])
    assert comp.finish_reason == "length" and comp.token_ids == [5, 9] and comp.prompt_token_ids == [1, 2]
    assert comp.logprobs == [-0.1, -1.5]  # the chosen token's value, not the best one
    assert comp.top_logprobs == [[(5, -0.1), (7, -2.5)], [(5, -0.4), (9, -1.5)]]
    eos = completion_from_vllm(_out("a", [5, 2], "stop", stop_reason=None), SamplingParams(max_new_tokens=4), [])
    assert eos.finish_reason == "eos" and eos.logprobs is None and eos.top_logprobs is None


def test_conversion_cuts_text_at_first_stop():
    params = SamplingParams(max_new_tokens=8, stop=("</search>", "</answer>"))
    comp = completion_from_vllm(_out("<search>q</search> more", [3, 4], "stop", stop_reason="</search>"), params)
    assert comp.finish_reason == "stop" and comp.text == "<search>q</search>"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_missing_vllm_gives_clear_import_error():
    with pytest.raises(ImportError, match="--group gpu"):
        VLLMGenerator("any-model")


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (GPU group)")
def test_live_engine_matches_interface(tiny_qwen2_dir):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    try:
        gen = VLLMGenerator(str(tiny_qwen2_dir), gpu_memory_utilization=0.2, max_model_len=256, enforce_eager=True)
    except Exception as err:  # engine start-up depends on driver/kernels: skip rather than fail
        pytest.skip(f"vLLM could not start: {err}")
    params = SamplingParams(max_new_tokens=8, temperature=0, logprobs=True, top_logprobs=2, n=1)
    out = gen.generate(["Q: 1+1=?\nA: ", [5, 6, 7]], params)
    assert len(out) == 2 and all(len(r) == 1 for r in out)
    assert all(len(c.logprobs) == len(c.token_ids) for r in out for c in r)
    assert gen.generate([], params) == []
