"""Session fixtures for shared's tests: tiny models and the char tokenizer, built once and loaded back from disk.

Each fixture returns a directory written by ``save_pretrained`` (or a tokenizer re-read with ``from_pretrained``),
so tests exercise the same loading path as real checkpoints. Method packages get the same fixtures through
``shared.modeling.tiny.cached_tiny``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from shared.modeling.tiny import build_tokenizer, cached_tiny

torch.set_num_threads(1)  # shared 2-core box: one thread per process avoids oversubscription stalls


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny_tokenizer")
    build_tokenizer(kind="char").save_pretrained(out)
    return AutoTokenizer.from_pretrained(out)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tiny_root) -> Path:
    return cached_tiny("qwen2", tiny_root)


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_root) -> Path:
    return cached_tiny("llama", tiny_root)


@pytest.fixture(scope="session")
def tiny_t5_dir(tiny_root) -> Path:
    return cached_tiny("t5", tiny_root)


@pytest.fixture(scope="session")
def tiny_qwen2_vl_dir(tiny_root) -> Path:
    return cached_tiny("qwen2_vl", tiny_root)
