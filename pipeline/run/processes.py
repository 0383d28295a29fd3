"""Several processes (`accelerate launch --multi_gpu --num_processes N`, or torchrun): each takes its share of the
work, one device per process.

Without a launcher there is one process and it takes everything. The share is accelerate's
`PartialState().split_between_processes`, contiguous and in order, so the set of images is the single run's.
"""

from __future__ import annotations

import atexit
import os
from functools import lru_cache
from typing import TypeVar

import torch

T = TypeVar("T")


def _state():
    """accelerate's view of the launch; without CUDA the processes talk over gloo on the CPU (cpu=True: otherwise
    accelerate would see no GPU and no distribution at all)."""
    from accelerate import PartialState  # imported only when work is split (it reads the launcher's environment)

    state = PartialState(cpu=not torch.cuda.is_available())
    _end_at_exit()
    return state


@lru_cache(maxsize=None)
def _end_at_exit() -> None:
    """Take the process group down while Python still runs (once per process): left to the interpreter's last
    teardown, a gloo group's threads can end the process with SIGABRT, a failed run for the launcher."""
    atexit.register(_end_group)


def _end_group() -> None:
    """Destroy this process's group, if it has one (each process its own: no waiting on the others)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def process_count() -> int:
    """How many processes share this run (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def my_share(items: list[T]) -> list[T]:
    """This process's contiguous share of the items (all of them when it runs alone)."""
    if process_count() == 1:
        return list(items)
    with _state().split_between_processes(list(items)) as mine:
        return list(mine)


def process_index() -> int:
    """This process's number (0 alone)."""
    return 0 if process_count() == 1 else _state().process_index


def is_main() -> bool:
    """Whether this is the first (or only) process: it writes the shared files and shows the progress bar."""
    return process_count() == 1 or _state().is_main_process


def wait_for_all() -> None:
    """Hold until every process reaches this point (nothing to wait for alone)."""
    if process_count() > 1:
        _state().wait_for_everyone()


def process_device(device: torch.device) -> torch.device:
    """One GPU per process: under a launcher, a CUDA run uses the process's own device."""
    if process_count() > 1 and device.type == "cuda":
        return _state().device
    return device


def from_main(value: T) -> T:
    """The main process's value, in every process (a folder name it chose, say)."""
    if process_count() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    shared = [value]
    broadcast_object_list(shared, from_process=0)
    return shared[0]


def gathered(values: list[T]) -> list[T]:
    """Every process's list, joined in process order (its own list alone)."""
    if process_count() == 1:
        return list(values)
    from accelerate.utils import gather_object

    return list(gather_object(list(values)))
