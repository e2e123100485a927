"""Tiny randomly initialised models and an offline tokenizer: the fixtures every test and CPU demo runs on.

Nothing can be downloaded, so the real architectures (Qwen2, Llama, T5, Qwen2-VL) are built from small configs with a
fixed seed, and the tokenizer is made locally: character level (fits the synthetic arithmetic suite) or a byte-level
BPE trained on given texts. Each builder saves with ``save_pretrained`` so code under test loads it back exactly as
it would load a hub checkpoint. ``cached_tiny`` builds a fixture once per directory (atomically) for fast test reuse.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<|pad|>", "<|bos|>", "<|endoftext|>", "<|unk|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, IM_START, IM_END, *VISION_TOKENS]
# Tags used by the search/tool/answer formats; BPE keeps each as one token, char level spells them out.
TAGS = ["<search>", "</search>", "<answer>", "</answer>", "<tool_call>", "</tool_call>", "<think>", "</think>",
        "<information>", "</information>", "<result>", "</result>"]
# Tags of the later formats (verifier, selected documents, numbered sub-questions and answers, memory edits, tool
# responses, the void <end>). Not in TAGS, so tokenizers built before them keep their ids: pass them (or any
# subset) as `build_tokenizer(..., extra_tags=EXTRA_TAGS)`.
_PAIRED = ["verify", "selected_doc", "response", "final_answer", "evidence", *(f"q{i}" for i in range(1, 6)),
           *(f"a{i}" for i in range(1, 6)), "Update", "Add", "tool_response"]
EXTRA_TAGS = [*(t for name in _PAIRED for t in (f"<{name}>", f"</{name}>")), "<end>"]
DEFAULT_ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n\t"

# Qwen-style chat template; list-valued content (VL messages) may hold {"type": "image"} and {"type": "text"} parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TinyKind = Literal["qwen2", "llama", "t5", "qwen2_vl"]


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=[IM_START, IM_END, *VISION_TOKENS],
        model_max_length=4096,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def tag_tokens(tags: Iterable[str]) -> list[str]:
    """Tag strings from names or tags: "verify" -> "<verify>", "</verify>"; a string starting with "<" is kept as is
    (a void tag such as "<end>"). Order kept, duplicates dropped."""
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or any(ch.isspace() for ch in tag):
            raise ValueError(f"extra_tags: {tag!r} is not a tag name or a tag such as '<end>'")
        for t in (tag,) if tag.startswith("<") else (f"<{tag}>", f"</{tag}>"):
            if t not in out:
                out.append(t)
    return out


def build_tokenizer(
    texts: Iterable[str] | None = None,
    kind: Literal["char", "bpe"] = "char",
    vocab_size: int = 512,
    extra_tags: Iterable[str] = (),
) -> PreTrainedTokenizerFast:
    """Build an offline tokenizer with pad/bos/eos/unk, chat tokens and a chat template.

    ``kind="char"``: one token per character of the default alphabet (digits, letters, punctuation, whitespace) plus
    any other character seen in ``texts`` (non-ASCII characters as their UTF-8 bytes); characters never seen are
    dropped by the byte-level model, so pass representative ``texts`` for non-ASCII data. ``kind="bpe"``: byte-level BPE trained on ``texts`` up to ``vocab_size``,
    with the format tags kept as single tokens.

    ``extra_tags`` (names such as "verify", or tags such as "<end>"; see `EXTRA_TAGS`) become single tokens of
    either kind, with ids after everything else (so a tokenizer built without them keeps its ids). For BPE this
    equals calling ``tok.add_tokens(tags)`` on the result.
    """
    texts = list(texts) if texts is not None else []
    extra = tag_tokens(extra_tags)
    if kind == "char":
        # A byte-level BPE without merges over a fixed alphabet is character level for ASCII text, and it is
        # exactly what transformers' Qwen2Tokenizer rebuilds from vocab + merges when AutoTokenizer loads a
        # qwen2 folder, so the saved tokenizer round-trips under every loader.
        to_unicode = _BYTE_MAP
        symbols: list[str] = []
        seen: set[str] = set()
        for ch in DEFAULT_ALPHABET + "".join(texts):
            for byte in ch.encode("utf-8"):
                sym = to_unicode[byte]
                if sym not in seen:
                    seen.add(sym)
                    symbols.append(sym)
        vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
        for sym in symbols:
            vocab[sym] = len(vocab)
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False, byte_fallback=False))
        _qwen_pipeline(tok)
        tok.add_special_tokens(SPECIAL_TOKENS)
        if extra:
            tok.add_tokens(extra)
        return _wrap(tok)
    if kind == "bpe":
        if not texts:
            raise ValueError("build_tokenizer(kind='bpe') needs training texts")
        tok = Tokenizer(models.BPE(unk_token=None))
        _qwen_pipeline(tok)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        tok.add_special_tokens(SPECIAL_TOKENS)
        tok.add_tokens(TAGS)
        if extra:
            tok.add_tokens([t for t in extra if t not in TAGS])
        return _wrap(tok)
    raise ValueError(f"unknown tokenizer kind {kind!r}; use 'char' or 'bpe'")


def _make_byte_map() -> dict[int, str]:
    """The GPT-2 byte -> printable unicode map used by byte-level BPE (space -> 'Ġ', newline -> 'Ċ')."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    mapping = {b: chr(b) for b in keep}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


_BYTE_MAP = _make_byte_map()

# Same normaliser / pre-tokeniser / decoder as transformers' Qwen2Tokenizer, so both loaders tokenise identically.
QWEN_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
              r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def _qwen_pipeline(tok: Tokenizer) -> None:
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()


def _default_tokenizer(tokenizer: PreTrainedTokenizerFast | None) -> PreTrainedTokenizerFast:
    return tokenizer if tokenizer is not None else build_tokenizer(kind="char")


def _token_ids(tokenizer: PreTrainedTokenizerFast) -> dict:
    return {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id}


def _save(model: torch.nn.Module, saver, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    saver.save_pretrained(out)
    return out


def tiny_causal_lm(
    out_dir: str | Path,
    arch: Literal["qwen2", "llama"] = "qwen2",
    tokenizer: PreTrainedTokenizerFast | None = None,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 512,
    seed: int = 0,
    max_positions: int = 1024,
) -> Path:
    """Build a random tiny Qwen2 or Llama causal LM (tied embeddings) and save it with its tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = _default_tokenizer(tokenizer)
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_positions,
        tie_word_embeddings=True, **_token_ids(tokenizer),
    )
    if arch == "qwen2":
        config, cls = Qwen2Config(**common), Qwen2ForCausalLM
    elif arch == "llama":
        config, cls = LlamaConfig(**common), LlamaForCausalLM
    else:
        raise ValueError(f"unknown causal arch {arch!r}; use 'qwen2' or 'llama'")
    torch.manual_seed(seed)
    model = cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return _save(model, tokenizer, out_dir)


def tiny_t5(
    out_dir: str | Path,
    tokenizer: PreTrainedTokenizerFast | None = None,
    d_model: int = 128,
    d_ff: int = 512,
    layers: int = 3,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """Build a random tiny T5 (encoder and decoder ``layers`` deep; decoder starts from pad) and save it."""
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = _default_tokenizer(tokenizer)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_ff=d_ff, d_kv=d_model // heads, num_layers=layers,
        num_decoder_layers=layers, num_heads=heads, decoder_start_token_id=tokenizer.pad_token_id,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return _save(model, tokenizer, out_dir)


def tiny_qwen2_vl(
    out_dir: str | Path,
    tokenizer: PreTrainedTokenizerFast | None = None,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 512,
    vision_depth: int = 2,
    vision_dim: int = 64,
    vision_heads: int = 4,
    min_pixels: int = 56 * 56,
    max_pixels: int = 112 * 112,
    seed: int = 0,
) -> Path:
    """Build a random tiny Qwen2-VL and save it with a processor whose images map to few tokens (56 px -> 4)."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _default_tokenizer(tokenizer)
    head_dim = hidden // heads
    if head_dim % 2:
        raise ValueError(f"hidden/heads must be even for rotary embeddings, got head_dim={head_dim}")
    half = head_dim // 2
    # mrope splits the rotary half-dimension over (time, height, width); the three parts must sum to head_dim/2.
    hw = (half - half // 4) // 2
    mrope_section = [half - 2 * hw, hw, hw]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
            tie_word_embeddings=True, **_token_ids(tokenizer),
        ),
        vision_config=dict(
            depth=vision_depth, embed_dim=vision_dim, hidden_size=hidden, num_heads=vision_heads, mlp_ratio=2,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    video_processor = Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=video_processor, chat_template=CHAT_TEMPLATE)
    return _save(model, processor, out_dir)


def build_tiny(kind: TinyKind, out_dir: str | Path, seed: int = 0) -> Path:
    """Build one of the standard fixtures (char tokenizer, default sizes) into ``out_dir``."""
    if kind in ("qwen2", "llama"):
        return tiny_causal_lm(out_dir, arch=kind, seed=seed)
    if kind == "t5":
        return tiny_t5(out_dir, seed=seed)
    if kind == "qwen2_vl":
        return tiny_qwen2_vl(out_dir, seed=seed)
    raise ValueError(f"unknown tiny model kind {kind!r}; use one of qwen2, llama, t5, qwen2_vl")


def cached_tiny(kind: TinyKind, root: str | Path, seed: int = 0) -> Path:
    """Return ``root/<kind>-s<seed>``, building it first if absent; built in a temp dir and renamed atomically."""
    root = Path(root)
    target = root / f"{kind}-s{seed}"
    if (target / "tiny.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=root))
    try:
        build_tiny(kind, tmp, seed=seed)
        (tmp / "tiny.json").write_text(json.dumps({"kind": kind, "seed": seed}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep its copy
            if not (target / "tiny.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
