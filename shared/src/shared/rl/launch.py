"""Pre-flight checks of the scale path: fail with a clear message where a GPU-only engine is asked for on a CPU.

`accelerate launch` with configs/accelerate/fsdp.yaml or deepspeed_zero2.yaml, and `rl.generator_backend: vllm`,
need CUDA devices. Without them accelerate 1.15 does not fail: FSDP is enabled only for GPU/accelerator process
groups, so under the FSDP config on CPU `Accelerator(cpu=True)` trains with plain DDP (MULTI_CPU, gloo) and
`Accelerator(cpu=False)` leaves each process alone (DistributedType.NO, every process training the whole batch).
DeepSpeed's launcher stops only when deepspeed is not installed, and vLLM fails deep inside its engine start.
`check_launch` turns each of these into one error that names the setting and the CPU alternative; the trainer and
the GRPO CLI call it before building their Accelerator.
"""

from __future__ import annotations

import importlib.util
import os

GENERATOR_BACKENDS = ("hf", "vllm")
CPU_ALTERNATIVE = "on CPU use configs/accelerate/cpu_2proc.yaml (DDP over gloo) or a plain single process"


class LaunchError(RuntimeError):
    """The launch environment asks for an engine this machine cannot run."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in ("1", "true", "yes")


def check_launch(generator_backend: str = "hf", cuda: bool | None = None) -> None:
    """Raise LaunchError (or ValueError for an unknown backend) before any engine starts; `cuda` overrides detection."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if generator_backend not in GENERATOR_BACKENDS:
        raise ValueError(f"rl.generator_backend {generator_backend!r} is unknown; known: {', '.join(GENERATOR_BACKENDS)}")
    if _flag("ACCELERATE_USE_FSDP") and not cuda:
        raise LaunchError("FSDP (configs/accelerate/fsdp.yaml, ACCELERATE_USE_FSDP=true) needs CUDA GPUs: accelerate "
                          "enables FSDP only on GPU/accelerator process groups, and on CPU it would silently run DDP "
                          f"or independent processes instead; {CPU_ALTERNATIVE}")
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        if not cuda:
            raise LaunchError("DeepSpeed ZeRO (configs/accelerate/deepspeed_zero2.yaml, ACCELERATE_USE_DEEPSPEED=true) "
                              f"needs CUDA GPUs and none is visible; {CPU_ALTERNATIVE}")
        if importlib.util.find_spec("deepspeed") is None:
            raise LaunchError("DeepSpeed ZeRO (configs/accelerate/deepspeed_zero2.yaml) needs the deepspeed package: "
                              "pip install deepspeed on the GPU machine")
    if generator_backend == "vllm" and not cuda:
        raise LaunchError("rl.generator_backend=vllm needs a CUDA GPU and none is visible; use rl.generator_backend=hf "
                          "on CPU")
