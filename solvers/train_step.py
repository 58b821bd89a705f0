"""The training step: one critic update, and one generator update when its turn comes. The trainer and the
benchmark (``tools/bench.py``) both run exactly this code, so the bench measures what training does.

What makes the step fast on a GPU is what it leaves out: nothing here reads a tensor back to the host (the loss
terms come back as device tensors, summed on the device by ``LossMeter`` and read once per log line), shapes are
fixed (full batches only), and no Python branch depends on a tensor's value. On the fast path each objective
(forward passes, losses and, for the critic, the gradient penalty with its input gradient) is compiled whole by
``torch.compile``; its backward, the penalty's "double backward" included, is then compiled by AOTAutograd with
it. The optimiser update (fused Adam on the fast path) and ``zero_grad`` stay outside the graph.
"""
from __future__ import annotations

import torch

from models.ganimation import Conditioning, LossWeights, critic_losses, generator_losses
from solvers.fast_path import FastPath, maybe_compile


class TrainStep:
    """The networks, their optimisers and the objectives, compiled or not according to ``path``.

    ``G_train``/``D_train`` are the networks as gradient steps call them (DDP wrappers under DDP, else ``G``/``D``
    themselves). The gradient-penalty pass always uses the plain critic: its input gradient is a functional
    transform, and DDP still all-reduces the penalty's weight gradients because the same backward also runs
    through the wrapped critic's real + fake pass.
    """

    def __init__(self, G, D, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, *, weights: LossWeights,
                 condition: Conditioning, path: FastPath, device: torch.device, G_train=None, D_train=None,
                 compile_mode: str | None = None):
        self.G, self.D, self.opt_G, self.opt_D = G, D, opt_G, opt_D
        self.G_train = G if G_train is None else G_train
        self.D_train = D if D_train is None else D_train
        self.weights, self.condition, self.path, self.device = weights, condition, path, device
        self.critic_objective = maybe_compile(self._critic_objective, path, device, mode=compile_mode)
        self.generator_objective = maybe_compile(self._generator_objective, path, device, mode=compile_mode)
        # CUDA graphs (mode "reduce-overhead") need to be told where an iteration starts, or a graph's outputs
        # from the previous step could be overwritten while still in use.
        self._mark_step = compile_mode == "reduce-overhead" and path.compile and device.type == "cuda"

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.path.amp)

    def _critic_objective(self, batch: dict, alpha: torch.Tensor):
        with self._autocast():
            return critic_losses(self.G, self.D_train, batch, self.weights, alpha, self.condition,
                                 gp_critic=self.D)

    def _generator_objective(self, batch: dict):
        with self._autocast():
            return generator_losses(self.G_train, self.D, batch, self.weights, self.condition)

    def gp_alpha(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The penalty's interpolation weights, drawn from the run's generator on the generator's own device (no
        host work when it lives on the training device)."""
        alpha = torch.rand(n, 1, 1, 1, generator=generator, device=generator.device)
        return alpha.to(self.device, non_blocking=True)

    def critic(self, batch: dict, generator: torch.Generator, eager: bool = False) -> dict:
        """One critic update; returns its loss terms as detached device tensors. ``eager``: skip compilation
        (the bench counts FLOPs on the eager ops)."""
        alpha = self.gp_alpha(batch["src_img"].shape[0], generator)
        if self._mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        objective = self._critic_objective if eager else self.critic_objective
        total, stats = objective(batch, alpha)
        self.opt_D.zero_grad(set_to_none=True)
        total.backward()
        self.opt_D.step()
        return stats

    def generator(self, batch: dict, eager: bool = False) -> dict:
        """One generator update through the frozen critic (no critic weight gradients are built)."""
        if self._mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        objective = self._generator_objective if eager else self.generator_objective
        self.D.requires_grad_(False)
        try:
            total, stats = objective(batch)
            self.opt_G.zero_grad(set_to_none=True)
            total.backward()
            self.opt_G.step()
        finally:
            self.D.requires_grad_(True)
        return stats


class LossMeter:
    """Running means of the loss terms, kept on the device.

    Each step costs one ``stack`` and one in-place add per objective (instead of one add per term); ``means``
    reads every sum back in a single device-to-host copy, the only synchronisation of a log line.
    """

    def __init__(self):
        self._sums: dict[tuple[str, ...], list] = {}  # the terms' names -> [sum vector, count]

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        keys = tuple(stats)
        values = torch.stack([stats[k] for k in keys])
        if keys in self._sums:
            self._sums[keys][0].add_(values)
            self._sums[keys][1] += 1
        else:
            self._sums[keys] = [values, 1]

    def reset(self) -> None:
        self._sums = {}

    def means(self) -> dict[str, float]:
        """The means since the last call, as Python floats; resets the sums."""
        if not self._sums:
            return {}
        names = [k for keys in self._sums for k in keys]
        values = torch.cat([total / count for total, count in self._sums.values()]).tolist()
        self.reset()
        return dict(zip(names, values))
