"""Catch CPU/GPU device mix-ups on a machine without a GPU: a simulated accelerator for tests.

On CUDA, an operation that meets a CUDA tensor and a CPU tensor with at least one dimension fails ("Expected all
tensors to be on the same device"); on a CPU box everything is on the CPU and such bugs stay hidden until the first
GPU run. `simulated_device()` makes them visible on the CPU:

    with simulated_device() as dev:
        x = dev.put(torch.randn(4, 3))          # a tensor "on the device"
        y = some_function(x)                     # raises DeviceMixError at the first CPU/device mix
        assert dev.on_device(y)

Inside the block, `put` tags a tensor as living on the simulated device; every torch operation's result is tagged
when any input is tagged; a tagged tensor's `.device` reads `meta` (so `torch.zeros(n, device=x.device)` and
`x.to(y.device)` create tagged tensors, as they would create CUDA ones); tensors created without a device are plain
CPU tensors, and an operation that meets a tagged tensor and a plain tensor with one or more dimensions raises
`DeviceMixError` naming the operation, as CUDA would (0-dimensional CPU tensors and Python numbers mix freely, as
on CUDA). Data stay on the CPU, so data-dependent operations (`torch.unique`, `.item()`, `.tolist()`) run, which the
`meta` device cannot do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

FAKE = torch.device("meta")  # what a simulated-device tensor reports as its device


class DeviceMixError(RuntimeError):
    """An operation met a tensor on the simulated device and a CPU tensor."""


class OnDevice(torch.Tensor):
    """A CPU tensor standing for one on the accelerator (see the module docstring)."""

    __torch_function__ = torch._C._disabled_torch_function_impl  # the mode below does the bookkeeping

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return FAKE


def _is_fake(value: Any) -> bool:
    if isinstance(value, torch.device):
        return value == FAKE
    if isinstance(value, str):
        return value == "meta"
    return False


def _strip_devices(args: tuple, kwargs: dict) -> tuple[tuple, dict, bool]:
    """Replace the simulated device by the CPU in a call's arguments; says whether it was asked for."""
    asked = False

    def swap(value: Any) -> Any:
        nonlocal asked
        if _is_fake(value):
            asked = True
            return torch.device("cpu")
        return value

    kwargs = {k: swap(v) if k == "device" or isinstance(v, torch.device) else v for k, v in kwargs.items()}
    args = tuple(swap(a) if isinstance(a, (torch.device, str)) else a for a in args)
    return args, kwargs, asked


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


class _Mode(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.device.__get__:  # reading .device of a plain tensor
            return func(*args, **kwargs)
        self.calls += 1
        args, kwargs, asked = _strip_devices(args, kwargs)
        tensors = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)]
        tagged = [t for t in tensors if isinstance(t, OnDevice)]
        plain = [t for t in tensors if not isinstance(t, OnDevice) and t.dim() > 0]
        method = _name(func).rsplit(".", 1)[-1] if "Tensor" in _name(func) else ""
        moving = method in ("to", "cpu", "numpy", "cuda")
        if tagged and plain and not moving:
            shapes = ", ".join(str(tuple(t.shape)) for t in plain[:3])
            raise DeviceMixError(f"{_name(func)}: a tensor on the device met CPU tensor(s) of shape {shapes}; create "
                                 "tensors on the inputs' device (device=x.device, x.new_zeros, torch.zeros_like)")
        out = func(*args, **kwargs)
        if method in ("cpu", "numpy") or (method == "to" and not asked and _to_cpu(args, kwargs)):
            return tree_map(_untag, out)
        if tagged or asked:
            return tree_map(_tag, out)
        return out


def _to_cpu(args: tuple, kwargs: dict) -> bool:
    """`x.to("cpu")` / `x.to(device="cpu")` / `x.to(cpu_tensor)` move a tensor off the device."""
    for value in (*args[1:], kwargs.get("device")):
        if isinstance(value, torch.device) and value.type == "cpu":
            return True
        if isinstance(value, str) and value.startswith("cpu"):
            return True
        if isinstance(value, torch.Tensor) and not isinstance(value, OnDevice):
            return True
    return False


def _tag(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and not isinstance(value, OnDevice):
        return value.as_subclass(OnDevice)
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, OnDevice):
        with torch._C.DisableTorchFunctionSubclass():
            return value.as_subclass(torch.Tensor)
    return value


class SimulatedDevice:
    """Handle of an active `simulated_device()` block."""

    def __init__(self, mode: _Mode) -> None:
        self._mode = mode

    def put(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor, tagged as living on the simulated device."""
        with torch._C.DisableTorchFunctionSubclass():
            return tensor.detach().clone().as_subclass(OnDevice).requires_grad_(tensor.requires_grad)

    @staticmethod
    def on_device(tensor: Any) -> bool:
        return isinstance(tensor, OnDevice)

    @property
    def calls(self) -> int:
        """Torch operations seen inside the block (a test can check its code ran under the mode)."""
        return self._mode.calls


@contextmanager
def simulated_device() -> Iterator[SimulatedDevice]:
    """Run a block where tensors put on the simulated device must not meet CPU tensors (module docstring)."""
    mode = _Mode()
    with mode:
        yield SimulatedDevice(mode)
