"""The GANimation objective: what the critic and the generator minimise on one batch.

Functions take the (possibly DDP-wrapped) networks explicitly, so the trainer decides wrapping and precision and
the maths stays here. Losses come back as a dict with scoped keys ("D/gp", "G/aus") of detached tensors; nothing
here calls ``.item()``, so a step never waits for the GPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models import losses


@dataclass(frozen=True)
class LossWeights:
    """Defaults are GANimation's (AU weight for a batch-mean MSE); ULME-GAN sets mask and tv to 0."""

    dis: float = 1.0
    aus: float = 160.0
    rec: float = 10.0
    mask: float = 0.1
    tv: float = 1e-5
    wgan_gp: float = 10.0


def generate(generator, img: torch.Tensor, aus: torch.Tensor):
    """Apply G; returns (result, attention, colour)."""
    return generator(img, aus)


def critic_losses(generator, critic, batch: dict, weights: LossWeights, gp_alpha: torch.Tensor):
    """Critic objective. G runs without a graph: a critic step needs only its fake images, no reconstruction."""
    src, src_aus, tar_aus = batch["src_img"], batch["src_aus"], batch["tar_aus"]
    with torch.no_grad():
        fake, _, _ = generator(src, tar_aus)
    # Real and fake in one forward: one pass instead of two, same result (the critic has no batch statistics).
    score, aus_pred = critic(torch.cat([src, fake], dim=0))
    score_real, score_fake = score.chunk(2, dim=0)
    aus_real, _ = aus_pred.chunk(2, dim=0)
    terms = {
        "D/real": losses.critic_real_loss(score_real),
        "D/fake": losses.critic_fake_loss(score_fake),
        "D/aus": losses.au_regression_loss(aus_real, src_aus),
        "D/gp": losses.gradient_penalty(critic, src, fake, gp_alpha),
    }
    total = (weights.dis * (terms["D/real"] + terms["D/fake"]) + weights.aus * terms["D/aus"]
             + weights.wgan_gp * terms["D/gp"])
    return total, _detached(terms, total, "D/total")


def generator_losses(generator, critic, batch: dict, weights: LossWeights):
    """Generator objective: fool the critic, hit the target AUs, come back to the source (cycle), smooth masks."""
    src, src_aus, tar_aus = batch["src_img"], batch["src_aus"], batch["tar_aus"]
    fake, att_fake, _ = generator(src, tar_aus)
    score, aus_pred = critic(fake)
    rec, att_rec, _ = generator(fake, src_aus)
    terms = {
        "G/adv": losses.generator_adv_loss(score),
        "G/aus": losses.au_regression_loss(aus_pred, tar_aus),
        "G/rec": losses.cycle_loss(rec, src),
        "G/mask": losses.attention_mean_loss(att_fake, att_rec),
        "G/tv": losses.attention_tv_loss(att_fake, att_rec),
    }
    total = (weights.dis * terms["G/adv"] + weights.aus * terms["G/aus"] + weights.rec * terms["G/rec"]
             + weights.mask * terms["G/mask"] + weights.tv * terms["G/tv"])
    stats = _detached(terms, total, "G/total")
    stats["G/attention_mean"] = att_fake.detach().float().mean()
    return total, stats


@torch.no_grad()
def sample_visuals(generator, batch: dict, rows: int = 8) -> dict[str, torch.Tensor]:
    """The pictures of a sample grid for the first ``rows`` faces of a batch."""
    src, src_aus, tar_aus = (batch[k][:rows] for k in ("src_img", "src_aus", "tar_aus"))
    fake, attention, color = generator(src, tar_aus)
    rec, _, _ = generator(fake, src_aus)
    return {"source": src, "color": color, "attention": attention, "result": fake, "reconstruction": rec,
            "target": batch["tar_img"][:rows]}


def _detached(terms: dict, total: torch.Tensor, total_key: str) -> dict:
    out = {k: v.detach().float() for k, v in terms.items()}
    out[total_key] = total.detach().float()
    return out
