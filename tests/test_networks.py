import pytest
import torch

from models import losses
from models.ganimation import LossWeights, critic_losses, generator_losses
from models.networks import Discriminator, Generator, count_parameters, init_weights
from solvers.trainer import lr_factor


@pytest.mark.parametrize("size, patch", [(128, 2), (256, 4)])
@pytest.mark.slow
def test_shapes_at_128_and_256(size, patch):
    g, d = Generator(aus_nc=17), Discriminator(aus_nc=17, final_size=size)
    x, y = torch.rand(1, 3, size, size) * 2 - 1, torch.rand(1, 17)
    with torch.no_grad():
        result, attention, color = g(x, y)
        score, aus = d(result)
    assert result.shape == color.shape == x.shape and attention.shape == (1, 1, size, size)
    assert score.shape == (1, 1, patch, patch) and aus.shape == (1, 17)


def test_parameter_counts_match_ganimation():
    # Reference sizes of the GANimation family at 128 px: G about 8.5 M, D about 45 M parameters.
    assert 8.0e6 < count_parameters(Generator()) < 9.0e6
    assert 43e6 < count_parameters(Discriminator()) < 47e6


@pytest.mark.parametrize("norm", ["instance", "instance_affine"])
def test_norm_variants_have_the_documented_parameters(norm):
    g = Generator(aus_nc=18, ngf=8, n_blocks=1, norm=norm)
    keys = g.state_dict().keys()
    assert ("model.0.bias" in keys) == (norm == "instance")
    assert ("model.1.weight" in keys) == (norm == "instance_affine")
    assert "color_top.0.weight" in keys and "au_top.0.weight" in keys


def test_attention_one_keeps_the_input():
    g = Generator(ngf=8, n_blocks=1)
    g.au_top[0] = torch.nn.Conv2d(8, 1, 1)  # constant logit 100 -> sigmoid exactly 1 in float32
    torch.nn.init.zeros_(g.au_top[0].weight)
    torch.nn.init.constant_(g.au_top[0].bias, 100.0)
    x = torch.rand(2, 3, 16, 16)
    result, attention, _ = g(x, torch.rand(2, 17))
    assert torch.equal(attention, torch.ones_like(attention)) and torch.allclose(result, x)


def test_gradient_penalty_is_zero_for_unit_gradient_critic():
    class Linear(torch.nn.Module):  # score = sum(w * x) with ||w|| = 1 -> gradient norm exactly 1
        def __init__(self):
            super().__init__()
            self.w = torch.randn(3 * 4 * 4)
            self.w /= self.w.norm()

        def forward(self, x):
            return (x.flatten(1) * self.w).sum(1, keepdim=True), None

    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    gp = losses.gradient_penalty(Linear(), real, fake, torch.rand(5, 1, 1, 1))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


def test_attention_tv_is_zero_for_flat_masks_and_sums_over_batch():
    flat = torch.full((3, 1, 8, 8), 0.3)
    assert losses.attention_tv_loss(flat).item() == 0
    one = torch.zeros(1, 1, 4, 4)
    one[0, 0, 0, 0] = 1.0
    assert losses.attention_tv_loss(one).item() == pytest.approx(2.0)
    assert losses.attention_tv_loss(one.repeat(3, 1, 1, 1)).item() == pytest.approx(6.0)


@pytest.mark.slow
def test_critic_step_builds_no_generator_graph():
    torch.manual_seed(0)
    g, d = Generator(ngf=8, n_blocks=1), Discriminator(final_size=16, ndf=8)
    init_weights(g)
    batch = {"src_img": torch.rand(2, 3, 16, 16) * 2 - 1, "src_aus": torch.rand(2, 17), "tar_aus": torch.rand(2, 17),
             "tar_img": torch.rand(2, 3, 16, 16)}
    total, stats = critic_losses(g, d, batch, LossWeights(), torch.rand(2, 1, 1, 1))
    total.backward()
    assert all(p.grad is None for p in g.parameters())
    assert all(p.grad is not None for p in d.parameters())
    assert set(stats) == {"D/real", "D/fake", "D/aus", "D/gp", "D/total"}
    g_total, g_stats = generator_losses(g, d, batch, LossWeights())
    assert {"G/adv", "G/aus", "G/rec", "G/mask", "G/tv", "G/total"} <= set(g_stats)


def test_linear_decay_never_trains_at_zero():
    factors = [lr_factor(e, 20, 10) for e in range(1, 31)]
    assert factors[:20] == [1.0] * 20
    assert all(b < a for a, b in zip(factors[19:], factors[20:]))
    assert factors[-1] == pytest.approx(1 / 11) and min(factors) > 0
    # ULME's fine-tuning schedule: --epoch_count 41 --niter 40 --niter_decay 10 decays over epochs 41..50
    assert lr_factor(41, 40, 10) == pytest.approx(10 / 11) and lr_factor(50, 40, 10) == pytest.approx(1 / 11)


def test_n2me_unet_is_the_identity_path_at_zero_change_and_conditions_on_aus():
    from models.n2me import UNetAdaINGenerator

    g = UNetAdaINGenerator(aus_nc=17, ngf=8, n_down=3)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out, attention, color = g(x, torch.zeros(2, 17))
    assert out.shape == x.shape and attention is None and color is None
    torch.nn.init.normal_(g.bottleneck.norm1.to_scale_shift.weight)  # as after training: AdaIN uses the condition
    a, _, _ = g(x, torch.zeros(2, 17))
    b, _, _ = g(x, torch.ones(2, 17))
    assert not torch.allclose(a, b)


def test_self_reconstruction_loss_only_with_its_weight():
    from models.ganimation import Conditioning
    from models.n2me import UNetAdaINGenerator

    g, d = UNetAdaINGenerator(ngf=8, n_down=2), Discriminator(final_size=16, ndf=8)
    batch = {"src_img": torch.rand(2, 3, 16, 16) * 2 - 1, "src_aus": torch.rand(2, 17), "tar_aus": torch.rand(2, 17),
             "tar_img": torch.rand(2, 3, 16, 16)}
    diff = Conditioning("difference")
    _, stats = generator_losses(g, d, batch, LossWeights(self_rec=10.0), diff)
    assert "G/self_rec" in stats and "G/mask" not in stats  # no attention mask in the U-Net
    _, stats = generator_losses(g, d, batch, LossWeights(), diff)
    assert "G/self_rec" not in stats
    assert torch.equal(diff(batch["src_aus"], batch["src_aus"]), torch.zeros(2, 17))
