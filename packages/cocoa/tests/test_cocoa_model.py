"""The model wrapper on a tiny Qwen2-VL: layout, positions, pooling, pixel path and the stage-2 isolation."""

import pytest
import torch
from cocoa.model import Item


def test_layout_and_copy_positions(tiny_model, random_image):
    items = [Item("a red circle", random_image(0)), Item("three green triangles")]
    batch = tiny_model.encode_items(items, with_copy=True)
    n_img = 4  # 56 px, patch 14, merge 2
    n_text = [int(batch.text_token[b].sum()) for b in range(2)]
    assert int(batch.image_token[0].sum()) == n_img and int(batch.image_token[1].sum()) == 0
    assert batch.n_in.tolist() == [n_img + 2 + n_text[0] + 1, n_text[1] + 1]
    assert batch.n_copy.tolist() == [n_text[0] + n_img, n_text[1]]
    assert int(batch.input_ids[0, batch.n_in[0] - 1]) == tiny_model.eos_id
    # the copy repeats the input text right after <EOS>
    copy0 = batch.input_ids[0][batch.copy_text[0]]
    assert torch.equal(copy0, batch.input_ids[0][batch.text_token[0]])
    pos = tiny_model.position_ids(batch)
    assert pos.shape == (3, 2, batch.input_ids.shape[1])
    # image tokens get a 2x2 grid of (height, width) positions; text continues after the image
    img_pos = pos[:, 0][:, batch.image_token[0]]
    assert img_pos[1].tolist() == [1, 1, 2, 2] and img_pos[2].tolist() == [1, 2, 1, 2]
    for b in range(2):
        eos = int(batch.n_in[b]) - 1
        n_copy = int(batch.n_copy[b])
        copy_pos = pos[:, b, eos + 1 : eos + 1 + n_copy]
        expected = pos[0, b, eos] + 1 + torch.arange(n_copy)
        assert all(torch.equal(copy_pos[r], expected) for r in range(3))


def test_fast_pixels_match_the_processor(tiny_model, random_image):
    images = [random_image(1), random_image(2)]
    fast, grid = tiny_model.pixels(images)
    import numpy as np

    ref = tiny_model.image_processor(images=[np.array(im) for im in images], return_tensors="pt")
    assert torch.equal(grid, ref["image_grid_thw"])
    assert torch.allclose(fast, ref["pixel_values"], atol=1e-5)


def test_embeddings_are_normalised_and_padding_invariant(tiny_model, random_image):
    short, long = Item("digit 7"), Item("a red circle and a blue square", random_image(3))
    alone = tiny_model.embed(tiny_model.encode_items([short]))
    padded = tiny_model.embed(tiny_model.encode_items([short, long]))
    assert torch.allclose(padded.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def _copy_input_grad(model, image, detach_eos: bool) -> torch.Tensor:
    """|d(copy outputs)/d(input embeddings)| summed per position; optionally cut <EOS> out of every layer output."""
    items = [Item("a red circle and a blue square", image)]
    batch = model.encode_items(items, with_copy=True)
    embeds = model.input_embeddings(batch).detach().requires_grad_(True)
    eos = int(batch.n_in[0]) - 1
    hooks = []
    if detach_eos:

        def cut(_module, _args, output):
            keep = torch.zeros(output.shape[:2], dtype=torch.bool)
            keep[:, eos] = True
            return torch.where(keep.unsqueeze(-1), output.detach(), output)

        hooks = [layer.register_forward_hook(cut) for layer in model.core.model.language_model.layers]
    try:
        hidden = model.hidden_states(batch, inputs_embeds=embeds)
    finally:
        for h in hooks:
            h.remove()
    copy = hidden[0, eos + 1 : eos + 1 + int(batch.n_copy[0])]
    copy.pow(2).sum().backward()
    return embeds.grad[0].abs().sum(-1)


def test_copy_sees_the_input_only_through_eos(tiny_model, random_image):
    image = random_image(4)
    with_path = _copy_input_grad(tiny_model, image, detach_eos=False)
    batch = tiny_model.encode_items([Item("a red circle and a blue square", image)], with_copy=True)
    eos_idx = int(batch.n_in[0]) - 1
    # through <EOS> every input token (image tokens included) reaches the copy
    assert (with_path[:eos_idx] > 0).all()
    cut = _copy_input_grad(tiny_model, image, detach_eos=True)
    # with <EOS>'s layer outputs detached, not one input token has a gradient path to the copy
    assert torch.count_nonzero(cut[:eos_idx]) == 0
    assert cut[eos_idx] > 0  # the <EOS> embedding itself still feeds the copy at the first layer


def test_causal_layout_leaks_without_the_isolation_mask(tiny_model, random_image, monkeypatch):
    # control: if the copy could attend to the input directly, cutting <EOS> would not stop the gradient
    import cocoa.model as model_module
    from cocoa.masks import attention_mask

    def leaky_mask(n_in, length, input_attention="causal", n_copy=None, dtype=torch.float32):
        total = torch.as_tensor(n_in) + (torch.as_tensor(n_copy) if n_copy is not None else 0)
        return attention_mask(total, length, "causal", dtype=dtype)

    monkeypatch.setattr(model_module, "attention_mask", leaky_mask)
    cut = _copy_input_grad(tiny_model, random_image(4), detach_eos=True)
    assert torch.count_nonzero(cut[:4]) > 0


def test_item_without_content_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="neither an image nor any text"):
        tiny_model.encode_items([Item("", None)])
    with pytest.raises(ValueError, match="empty list"):
        tiny_model.encode_items([])
