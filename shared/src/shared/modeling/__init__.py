"""Load causal LM, seq2seq and vision-language models (with tokenizer/processor), pick dtype/device, add LoRA.

One entry point, ``load_model(path_or_id, kind=...)``, so every method package loads a tiny local fixture and a real
hub checkpoint the same way. Offline runs fail fast with a ``ModelLoadError`` that names the path and says what to
do instead of a deep hub traceback; a folder whose config or weights do not load is a ``ModelLoadError`` too. The
torch-free checks a command runs before loading (``shared.cli.check_model_source``) use the same local-path rule.
Importing this module does not import torch (``LoraSettings`` sits in configs that a command validates before any
heavy import); the functions import it when called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shared.cli import looks_local as _looks_local

if TYPE_CHECKING:
    import torch

ModelKind = Literal["causal", "seq2seq", "vl"]


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be loaded; the message names the path or hub id."""


@dataclass
class LoraSettings:
    """peft LoRA options; ``target_modules=None`` lets peft pick the architecture's defaults."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: list[str] = field(default_factory=list)


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but no CUDA GPU is available; use device='cpu'")
    if device.startswith("cuda") or device == "cpu" or device == "mps":
        return torch.device(device)
    raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")


_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}  # names accepted -> torch attribute


def pick_dtype(dtype: str | torch.dtype = "auto", device: torch.device | str = "cpu") -> torch.dtype:
    """``auto`` -> bfloat16 on a GPU that supports it, float32 otherwise (CPU half precision is slow and lossy)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype in _DTYPES:
        return getattr(torch, _DTYPES[dtype])
    raise ValueError(f"unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'")


def _check_source(path_or_id: str) -> None:
    if _looks_local(path_or_id):
        path = Path(path_or_id).expanduser()
        if not path.is_dir():
            raise ModelLoadError(
                f"model path {path_or_id!r} does not exist or is not a directory; build a tiny model with "
                "shared.modeling.tiny (e.g. cached_tiny('qwen2', dir)) or pass an existing checkpoint folder")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model path {path_or_id!r} has no config.json; is it a save_pretrained folder?")


def _hub_hint(path_or_id: str, err: Exception) -> ModelLoadError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    how = ("the hub is disabled (HF_HUB_OFFLINE=1): download it on a connected machine into the HF cache or a "
           "local folder and pass that folder" if offline else
           "check the id, your network and HF_TOKEN, or pass a local folder")
    return ModelLoadError(f"could not load model {path_or_id!r}: {type(err).__name__}: {err}. To fix: {how}")


def _load_tokenizer(path_or_id: str, kind: ModelKind):
    from transformers import AutoProcessor, AutoTokenizer

    if kind == "vl":
        processor = AutoProcessor.from_pretrained(path_or_id)
        tok = processor.tokenizer
    else:
        processor = tok = AutoTokenizer.from_pretrained(path_or_id)
    if tok.pad_token is None:  # many causal checkpoints ship without pad: reuse eos so batching works
        tok.pad_token = tok.eos_token
    if kind in ("causal", "vl"):
        tok.padding_side = "left"  # generation continues from the right end of every row
    return processor


def _model_class(kind: ModelKind):
    import transformers

    if kind == "causal":
        return transformers.AutoModelForCausalLM
    if kind == "seq2seq":
        return transformers.AutoModelForSeq2SeqLM
    if kind == "vl":
        return getattr(transformers, "AutoModelForImageTextToText", None) or transformers.Qwen2VLForConditionalGeneration
    raise ValueError(f"unknown model kind {kind!r}; use 'causal', 'seq2seq' or 'vl'")


def load_model(
    path_or_id: str | Path,
    kind: ModelKind = "causal",
    dtype: str | torch.dtype = "auto",
    device: str = "auto",
    lora: LoraSettings | None = None,
    attn_implementation: str | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` (``(model, processor)`` for ``kind='vl'``) on the chosen device and dtype."""
    path_or_id = str(path_or_id)
    cls = _model_class(kind)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    _check_source(path_or_id)
    extra: dict[str, Any] = {}
    if attn_implementation is not None:
        extra["attn_implementation"] = attn_implementation
    try:
        processor = _load_tokenizer(path_or_id, kind)
        model = cls.from_pretrained(path_or_id, dtype=torch_dtype, **extra)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as err:
        raise _hub_hint(path_or_id, err) from err
    except (KeyError, RuntimeError, TypeError) as err:  # a folder whose config or weights do not fit together
        raise ModelLoadError(f"could not load model {path_or_id!r} as a {kind} model: {type(err).__name__}: "
                             f"{err}") from err
    model.to(dev)
    model.eval()
    if lora is not None:
        model = apply_lora(model, lora)
    return model, processor


def apply_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """Wrap ``model`` with peft LoRA adapters (only adapter weights stay trainable)."""
    from peft import LoraConfig, TaskType, get_peft_model

    is_seq2seq = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=settings.target_modules, bias=settings.bias,
        modules_to_save=settings.modules_to_save or None,
        task_type=TaskType.SEQ_2_SEQ_LM if is_seq2seq else TaskType.CAUSAL_LM,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise ModelLoadError(f"LoRA could not be applied ({err}); set LoraSettings.target_modules explicitly") from err


def clone_model(model: torch.nn.Module) -> torch.nn.Module:
    """An independent copy of ``model`` (RL reference models, replication rows that start from one warm start).

    A Hugging Face model is rebuilt from its config with the weights loaded, not deep-copied: TRL's trainers leave
    an instance-bound ``forward`` wrapper on the model they trained, and a deep copy keeps calling the source
    model's forward, so the copy's own weights would be neither used nor trained. Other modules are deep-copied.
    """
    import copy

    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        return copy.deepcopy(model)
    fresh = type(model)(model.config)
    fresh.load_state_dict(model.state_dict())
    fresh.generation_config = copy.deepcopy(model.generation_config)
    param = next(model.parameters(), None)
    if param is not None:
        fresh = fresh.to(device=param.device, dtype=param.dtype)
    return fresh.train(model.training)


__all__ = ["LoraSettings", "ModelLoadError", "apply_lora", "clone_model", "load_model", "pick_device", "pick_dtype"]
