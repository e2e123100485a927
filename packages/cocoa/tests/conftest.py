"""Shared fixture: one tiny random Qwen2-VL (built once per session) wrapped as a CocoaModel."""

import numpy as np
import pytest
import torch
from cocoa.backbone import build_tiny, load_cocoa
from cocoa.config import ModelConfig
from PIL import Image

TEXTS = ["a red circle and a blue square", "What colour is the square? blue", "three green triangles", "digit 7"]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    cfg = ModelConfig(device="cpu", tokenizer_vocab=300)
    return build_tiny(tmp_path_factory.mktemp("cocoa_tiny") / "model", TEXTS, cfg, image_size=56, seed=0)


@pytest.fixture()
def tiny_model(tiny_dir):
    torch.manual_seed(0)
    return load_cocoa(tiny_dir, ModelConfig(device="cpu"))


def _random_image(seed: int, size: int = 56) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="session")
def random_image():
    """A function seed -> a random RGB image (56 px unless told)."""
    return _random_image
