"""The seeds' published settings as presets: ``--preset NAME`` sets these flags, and any flag typed on the command line
overrides its preset value (options.json and run.json record the preset and the overrides).

Every value names where it comes from. "seed-systems" is /work/shared/reference/seed-systems.md (the facts gathered
from the seeds' public code, kept beside the project as ../shared/reference/seed-systems.md); "ULME README" and
"N2ME README" are the seeds' own READMEs (../shared/seeds/ulme-gan-README.md, n2me-README.md). A value no source
gives is left out, so the flag keeps this toolkit's default: a preset never claims more than the seed published.

Only flags of the chosen ``--mode`` are set (``train`` or ``test``); a preset without settings for that mode is an
error. Values this toolkit chose differently on purpose (the seeds' bugs: the scheduler's last epoch at lr 0, the
100 fps videos, whole-clip batches) are not presets: the fixed behaviour applies under every preset.
"""
from __future__ import annotations

from dataclasses import dataclass

SEED_SYSTEMS = "seed-systems"
ULME_README = "ULME README"
N2ME_README = "N2ME README"


@dataclass(frozen=True)
class Setting:
    value: object
    source: str  # where the value is published


@dataclass(frozen=True)
class Preset:
    help: str
    train: dict[str, Setting]
    test: dict[str, Setting]


def _gan_training(lambda_mask: Setting, lambda_tv: Setting) -> dict[str, Setting]:
    """What every GANimation-family seed trains with (seed-systems section 2), but the two attention weights."""
    s2 = f"{SEED_SYSTEMS} 2"
    return {
        "final_size": Setting(128, f"{SEED_SYSTEMS} 1: 128x128 face crops"),
        "ngf": Setting(64, f"{s2}: generator Conv7x7 64"),
        "n_blocks": Setting(6, f"{s2}: 6 residual blocks"),
        "ndf": Setting(64, f"{s2}: critic 6x Conv4x4 s2 64 -> 2048"),
        "d_layers": Setting(6, f"{s2}: critic 6x Conv4x4 s2 64 -> 2048"),
        "lambda_aus": Setting(160.0, f"{s2}: lambda_AU 4000 batch-summed = 160 batch-mean at batch 25"),
        "lambda_rec": Setting(10.0, f"{s2}: cycle 10"),
        "lambda_wgan_gp": Setting(10.0, f"{s2}: GP 10"),
        "lambda_mask": lambda_mask,
        "lambda_tv": lambda_tv,
        "lr": Setting(1e-4, f"{s2}: Adam lr 1e-4"),
        "beta1": Setting(0.5, f"{s2}: betas (0.5, 0.999)"),
        "beta2": Setting(0.999, f"{s2}: betas (0.5, 0.999)"),
        "train_gen_iter": Setting(5, f"{s2}: D every iteration, G every 5th"),
        "niter": Setting(20, f"{s2}: 20 epochs constant"),
        "niter_decay": Setting(10, f"{s2}: + 10 linear decay"),
        "batch_size": Setting(25, f"{s2}: batch 25"),
        "aus_noise": Setting(0.1, f"{s2}: target AUs + U(-0.1, 0.1) noise"),
    }


_ATTENTION_CODE = (Setting(0.1, f"{SEED_SYSTEMS} 2: attention mean 0.1"),
                   Setting(1e-5, f"{SEED_SYSTEMS} 2: attention TV 1e-5 (GANimation's code; its paper says 1e-4)"))
# The seeds' test mode: absolute AUs, raw targets (no inverse AU-response curves), 256 px frames.
_SEED_TEST = {
    "au_mode": Setting("absolute", f"{SEED_SYSTEMS} 3: the generator is conditioned on absolute AUs"),
    "no_calibration": Setting(True, f"{SEED_SYSTEMS} 3: the seeds drive the raw target AUs"),
    "output_size": Setting(256, f"{SEED_SYSTEMS} 3: frames resized to 256x256"),
}

PRESETS: dict[str, Preset] = {
    "ulme_gan": Preset(
        help="ULME-GAN (MEGC2021): replicate networks, attention penalties 0; test: re-code + linear fitting",
        train={
            "model": Setting("ganimation", f"{SEED_SYSTEMS} 2: GANimation-family generator and critic"),
            "norm": Setting("instance", f"{SEED_SYSTEMS} 5: InstanceNorm without affine, convolutions with bias"),
            **_gan_training(Setting(0.0, f"{SEED_SYSTEMS} 2: ULME sets the attention mean penalty to 0"),
                            Setting(0.0, f"{SEED_SYSTEMS} 2: ULME sets the attention TV penalty to 0")),
        },
        test={
            **_SEED_TEST,
            "re_code": Setting(True, f"{ULME_README}: MEGC2021 command (--re_code)"),
            "linear_fitting": Setting(True, f"{ULME_README}: MEGC2021 command (--linear_fitting)"),
            "pre_treatment": Setting(True, f"{ULME_README}: MEGC2021 command (--pre_treatment)"),
            # Not --serial_batches: the seed needed the whole clip in one batch; test mode here streams any length.
            "batch_size": Setting(128, f"{ULME_README}: MEGC2021 command (--batch_size 128)"),
            "max_dataset_size": Setting(9999, f"{ULME_README}: MEGC2021 command (--max_dataset_size 9999)"),
        }),
    "n2me_neutral": Preset(
        help="N2ME stage 1: the 18-AU neutral-expression GANimation; test: --test_mode neutral",
        train={
            "model": Setting("ganimation", f"{SEED_SYSTEMS} 4: the neutral stage is an 18-AU GANimation"),
            "aus_schema": Setting("n2me18", f"{SEED_SYSTEMS} 1 and {N2ME_README}: --use_18_aus 1 (AU27* before AU45)"),
            # N2ME's InstanceNorm has no affine weights and its convolutions no bias: "instance" computes the same
            # (models/networks.py, checkpoints/seed_formats.py: the bias before an InstanceNorm is inert).
            "norm": Setting("instance", f"{SEED_SYSTEMS} 5: InstanceNorm without affine weights"),
            **_gan_training(*_ATTENTION_CODE),
        },
        test={"test_mode": Setting("neutral", f"{N2ME_README}: --test_mode 'neutral'")}),
    "n2me_me": Preset(
        help="N2ME stage 2: the U-Net + AdaIN ME generator on AU differences; test: --test_mode me",
        train={
            "model": Setting("n2me_unet", f"{SEED_SYSTEMS} 4: a U-Net with one AdaIN residual block, AU difference"),
            "aus_schema": Setting("openface17", f"{SEED_SYSTEMS} 1: the 18-AU variant is the neutral model's only"),
            # The U-Net's widths are not published, and it has no attention mask to penalise: those keep defaults.
            **{k: v for k, v in _gan_training(*_ATTENTION_CODE).items()
               if k not in ("ngf", "n_blocks", "lambda_mask", "lambda_tv")},
        },
        test={
            "test_mode": Setting("me", f"{N2ME_README}: --test_mode 'me'"),
            "me_emotions": Setting("all", f"{N2ME_README}: --me_emotions \"all\""),
            "me_samples": Setting(10, f"{N2ME_README}: --me_samples default = 10"),
        }),
    "ganimation": Preset(
        help="original GANimation: affine InstanceNorm without conv bias, the paper's loss weights",
        train={
            "model": Setting("ganimation", f"{SEED_SYSTEMS} 2: GANimation generator and critic"),
            "norm": Setting("instance_affine", f"{SEED_SYSTEMS} 5: InstanceNorm with affine weights, no conv bias"),
            **_gan_training(*_ATTENTION_CODE),
        },
        test=dict(_SEED_TEST)),
}
