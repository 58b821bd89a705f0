"""Process-group set-up for ``torchrun`` (one process per GPU, or several CPU ranks with gloo)."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def parse_gpu_ids(gpu_ids: str) -> list[int]:
    ids = [int(x) for x in str(gpu_ids).replace(" ", "").split(",") if x != ""]
    return [] if not ids or ids[0] < 0 else ids


def select_device(gpu_ids: str, local_rank: int) -> torch.device:
    """``-1`` or no CUDA -> CPU; otherwise the GPU this (local) rank owns."""
    ids = parse_gpu_ids(gpu_ids)
    if not ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.info("CUDA is not available: running on CPU (--gpu_ids %s ignored)", gpu_ids)
        return torch.device("cpu")
    device = torch.device("cuda", ids[local_rank % len(ids)])
    torch.cuda.set_device(device)
    return device


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment; a plain ``python`` run is world size 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_rank_from_env() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def check_ranks_agree(modules, info: DistInfo, step: int) -> None:
    """DDP keeps replicas identical by construction; the trainer verifies it at every save, since a silent desync
    (a rank skipping a step, a non-deterministic op) would otherwise only show up as a worse model."""
    if not info.enabled:
        return
    digest = hashlib.sha1()
    for module in modules:
        for tensor in module.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digests = gather_objects(digest.hexdigest(), info)
    if len(set(digests)) > 1:
        raise RuntimeError(f"DDP ranks hold different weights at step {step}: {digests}")
    log.info("DDP: weights identical on all %d ranks at step %d (sha1 %s)", info.world_size, step, digests[0][:12])


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
