"""Epoch-seeded batch order, sharded across DDP ranks, that can start part-way through an epoch."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


class EpochBatchSampler(Sampler[list[int]]):
    """Yields this rank's index batches for one epoch; ``start_batch`` skips what a resumed run already did.

    Every rank computes the same permutation and takes its stride, so ranks see disjoint images and the global
    batch is ``batch_size * world_size``. Incomplete batches are dropped: WGAN-GP and the rolled target pairing
    want full batches.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, start_batch: int = 0):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.shuffle, self.rank, self.world_size, self.start_batch = shuffle, rank, world_size, start_batch

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start_batch)

    def __iter__(self):
        order = epoch_permutation(self.n, self.seed, self.epoch, self.shuffle)
        mine = order[self.rank::self.world_size]
        for b in range(self.start_batch, self.batches_per_epoch()):
            yield mine[b * self.batch_size:(b + 1) * self.batch_size].tolist()
