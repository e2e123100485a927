"""Session fixtures for rose's tests: a tiny random Qwen2 with the char tokenizer (built once, loaded from disk)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from shared.modeling.tiny import cached_tiny

torch.set_num_threads(1)  # shared 2-core box


@pytest.fixture(scope="session")
def rose_tiny_dir(tmp_path_factory) -> Path:
    return cached_tiny("qwen2", tmp_path_factory.mktemp("rose_tiny"))


@pytest.fixture()
def rose_tiny(rose_tiny_dir):
    from shared.modeling import load_model

    return load_model(str(rose_tiny_dir), kind="causal", dtype="float32", device="cpu")
