"""The GANimation-family objective: what the critic and the generator minimise on one batch.

One objective serves both generators of the toolkit; ``Conditioning`` says how each is told what to do:
GANimation's generator takes the target AUs ("absolute"), N2ME's U-Net the change from the input's AUs
("difference"). Attention losses apply when the generator returns a mask; the self-reconstruction loss
G(x, own condition) = x applies when its weight is above 0 (N2ME's).

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
    self_rec: float = 0.0


@dataclass(frozen=True)
class Conditioning:
    """``"absolute"``: G sees the target AUs; ``"difference"``: G sees target - source AUs (N2ME)."""

    kind: str = "absolute"

    def __call__(self, src_aus: torch.Tensor, tar_aus: torch.Tensor) -> torch.Tensor:
        return tar_aus if self.kind == "absolute" else tar_aus - src_aus


ABSOLUTE = Conditioning("absolute")


def critic_losses(generator, critic, batch: dict, weights: LossWeights, gp_alpha: torch.Tensor,
                  condition: Conditioning = ABSOLUTE, gp_critic=None):
    """Critic objective. G runs without a graph: a critic step needs only its fake images, no reconstruction.

    ``gp_critic``: the same critic for the gradient-penalty pass when ``critic`` is a compiled wrapper (the
    penalty's double backward cannot run through a compiled graph). The penalty needs its own forward at the
    interpolated images; folding it into the real + fake pass would run the double backward over all 3 B rows."""
    src, src_aus, tar_aus = batch["src_img"], batch["src_aus"], batch["tar_aus"]
    with torch.no_grad():
        fake, _, _ = generator(src, condition(src_aus, tar_aus))
    # Real and fake in one forward: one pass instead of two, same result (the critic has no batch statistics).
    score, aus_pred = critic(torch.cat([src, fake], dim=0))
    score_real, score_fake = score.chunk(2, dim=0)
    aus_real, _ = aus_pred.chunk(2, dim=0)
    terms = {
        "D/real": losses.critic_real_loss(score_real),
        "D/fake": losses.critic_fake_loss(score_fake),
        "D/aus": losses.au_regression_loss(aus_real, src_aus),
        "D/gp": losses.gradient_penalty(critic if gp_critic is None else gp_critic, src, fake, gp_alpha),
    }
    total = (weights.dis * (terms["D/real"] + terms["D/fake"]) + weights.aus * terms["D/aus"]
             + weights.wgan_gp * terms["D/gp"])
    return total, _detached(terms, total, "D/total")


def generator_losses(generator, critic, batch: dict, weights: LossWeights, condition: Conditioning = ABSOLUTE):
    """Generator objective: fool the critic, hit the target AUs, come back to the source (cycle), smooth masks,
    and (N2ME) leave the face unchanged when asked for its own AUs."""
    src, src_aus, tar_aus = batch["src_img"], batch["src_aus"], batch["tar_aus"]
    fake, att_fake, _ = generator(src, condition(src_aus, tar_aus))
    score, aus_pred = critic(fake)
    rec, att_rec, _ = generator(fake, condition(tar_aus, src_aus))
    terms = {
        "G/adv": losses.generator_adv_loss(score),
        "G/aus": losses.au_regression_loss(aus_pred, tar_aus),
        "G/rec": losses.cycle_loss(rec, src),
    }
    total = weights.dis * terms["G/adv"] + weights.aus * terms["G/aus"] + weights.rec * terms["G/rec"]
    if att_fake is not None:
        terms["G/mask"] = losses.attention_mean_loss(att_fake, att_rec)
        terms["G/tv"] = losses.attention_tv_loss(att_fake, att_rec)
        total = total + weights.mask * terms["G/mask"] + weights.tv * terms["G/tv"]
    if weights.self_rec > 0:
        same, _, _ = generator(src, condition(src_aus, src_aus))
        terms["G/self_rec"] = losses.cycle_loss(same, src)
        total = total + weights.self_rec * terms["G/self_rec"]
    stats = _detached(terms, total, "G/total")
    if att_fake is not None:
        stats["G/attention_mean"] = att_fake.detach().float().mean()
    return total, stats


@torch.no_grad()
def sample_visuals(generator, batch: dict, rows: int = 8, condition: Conditioning = ABSOLUTE) -> dict:
    """The pictures of a sample grid for the first ``rows`` faces of a batch, in column order."""
    src, src_aus, tar_aus = (batch[k][:rows] for k in ("src_img", "src_aus", "tar_aus"))
    fake, attention, color = generator(src, condition(src_aus, tar_aus))
    rec, _, _ = generator(fake, condition(tar_aus, src_aus))
    visuals = {"source": src}
    if attention is not None:
        visuals.update(color=color, attention=attention)
    visuals.update(result=fake, reconstruction=rec, target=batch["tar_img"][:rows])
    return visuals


def _detached(terms: dict, total: torch.Tensor, total_key: str) -> dict:
    out = {k: v.detach().float() for k, v in terms.items()}
    out[total_key] = total.detach().float()
    return out
