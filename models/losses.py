"""GANimation losses as pure functions of tensors."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def critic_real_loss(critic_map: torch.Tensor) -> torch.Tensor:
    """WGAN: the critic raises its score on real images (minimise -score)."""
    return -critic_map.mean()


def critic_fake_loss(critic_map: torch.Tensor) -> torch.Tensor:
    return critic_map.mean()


def generator_adv_loss(critic_map: torch.Tensor) -> torch.Tensor:
    return -critic_map.mean()


def au_regression_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Batch-mean MSE over all AU values (GANimation's 4000 on a batch-sum equals 160 here at batch 25)."""
    return F.mse_loss(pred.float(), target.float())


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (||grad D(x_hat)||_2 - 1)^2 at per-sample interpolations x_hat = a*real + (1-a)*fake.

    The input gradient comes from ``torch.func.grad``, not ``torch.autograd.grad(create_graph=True)``: the two
    give the same numbers (tests/test_train_step.py), but the functional form is an ordinary traced function, so
    ``torch.compile`` can put the penalty, and the backward through it (the "double backward"), in the same graph
    as the rest of the critic step; ``autograd.grad`` would break the graph there.
    """
    x_hat = (alpha * real + (1 - alpha) * fake).detach()
    grad = torch.func.grad(lambda x: critic(x)[0].float().sum())(x_hat)
    return (grad.float().flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def cycle_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(reconstruction.float(), original.float())


def attention_mean_loss(*attentions: torch.Tensor) -> torch.Tensor:
    """Mean of the masks. A = 1 copies the input, so this pushes against the common failure where the mask
    saturates at 1 and the generator ignores its AU condition (output = input)."""
    return sum(a.float().mean() for a in attentions)


def attention_tv_loss(*attentions: torch.Tensor) -> torch.Tensor:
    """Total variation of the masks: sum of absolute neighbour differences over the whole batch.

    Summed, not averaged, as in the GANimation code, so its customary weight (1e-5) keeps its meaning.
    """
    total = 0.0
    for a in attentions:
        a = a.float()
        total = total + (a[:, :, 1:, :] - a[:, :, :-1, :]).abs().sum() + (a[:, :, :, 1:] - a[:, :, :, :-1]).abs().sum()
    return total
