"""The shared training step: the penalty's functional gradient is the double backward's, each objective traces as
one graph (what lets torch.compile and CUDA graphs take the whole step), and nothing is read back per step."""
import sys
from pathlib import Path

import pytest
import torch

import data.device_batches as device_batches
from helpers import ROOT, TINY_MODEL, make_tiny_dataset
from main import main
from models import losses
from models.ganimation import ABSOLUTE, LossWeights
from models.networks import Discriminator, Generator, init_weights
from solvers.fast_path import PLAIN
from solvers.train_step import LossMeter, TrainStep


def _networks():
    torch.manual_seed(0)
    G, D = Generator(ngf=8, n_blocks=1), Discriminator(final_size=16, ndf=8)
    init_weights(G)
    init_weights(D)
    return G, D


def _batch(n=3):
    gen = torch.Generator().manual_seed(1)
    src = torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
    return {"src_img": src, "src_aus": torch.rand(n, 17, generator=gen), "tar_img": src.roll(1, dims=0),
            "tar_aus": torch.rand(n, 17, generator=gen)}


def _step(G, D, path=PLAIN):
    return TrainStep(G, D, torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters()),
                     weights=LossWeights(), condition=ABSOLUTE, path=path, device=torch.device("cpu"))


@pytest.mark.numeric
def test_functional_penalty_equals_the_double_backward():
    _, D = _networks()
    real, fake, alpha = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16), torch.rand(4, 1, 1, 1)

    def reference():  # WGAN-GP as usually written: autograd.grad with create_graph, then backward through it
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x_hat)[0].sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()

    values, grads = [], []
    for penalty in (reference, lambda: losses.gradient_penalty(D, real, fake, alpha)):
        D.zero_grad(set_to_none=True)
        value = penalty()
        value.backward()
        values.append(value.detach())
        grads.append({name: p.grad.clone() for name, p in D.named_parameters() if p.grad is not None})
    # two routes through torch's CPU kernels; measured on an AMD EPYC under ATEN_CPU_CAPABILITY=default, avx2 and its
    # own avx512: identical values and gradients. The tolerances leave fp32 reordering room all the same.
    assert values[0] > 0 and torch.allclose(values[0], values[1], rtol=1e-6, atol=0)
    # every critic weight the score depends on (all but the AU head) gets the same second-order gradient
    assert grads[0].keys() == grads[1].keys() == {n for n, _ in D.named_parameters() if not n.startswith("aus_top")}
    for name, a in grads[0].items():  # (biases of a piecewise-linear critic get none: its input gradient ignores them)
        assert (a.abs().sum() > 0 or name.endswith("bias")) and torch.allclose(a, grads[1][name], rtol=1e-5,
                                                                               atol=1e-9), name


@pytest.mark.parametrize("objective", ["critic", "generator"])
def test_each_objective_is_one_graph(objective):
    """Dynamo traces the whole objective, the penalty's input gradient included, with no graph break."""
    G, D = _networks()
    step, batch = _step(G, D), _batch()
    torch._dynamo.reset()
    if objective == "critic":
        report = torch._dynamo.explain(step._critic_objective)(batch, torch.rand(3, 1, 1, 1))
    else:
        D.requires_grad_(False)
        report = torch._dynamo.explain(step._generator_objective)(batch)
        D.requires_grad_(True)
    assert (report.graph_count, report.graph_break_count) == (1, 0), report.break_reasons


@pytest.mark.slow
def test_steps_update_only_their_network():
    G, D = _networks()
    step, batch = _step(G, D), _batch()
    g0, d0 = [p.clone() for p in G.parameters()], [p.clone() for p in D.parameters()]
    stats = step.critic(batch, torch.Generator().manual_seed(0))
    assert set(stats) == {"D/real", "D/fake", "D/aus", "D/gp", "D/total"}
    assert all(torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(d0, D.parameters()))
    d1 = [p.clone() for p in D.parameters()]
    stats = step.generator(batch)
    assert {"G/adv", "G/aus", "G/rec", "G/total", "G/attention_mean"} <= set(stats)
    assert all(torch.equal(a, b) for a, b in zip(d1, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())  # the critic is unfrozen again


def test_loss_meter_means_per_term():
    meter = LossMeter()
    meter.add({"D/a": torch.tensor(1.0), "D/b": torch.tensor(4.0)})
    meter.add({"D/a": torch.tensor(3.0), "D/b": torch.tensor(8.0)})
    meter.add({"G/c": torch.tensor(5.0)})
    assert meter.means() == {"D/a": 2.0, "D/b": 6.0, "G/c": 5.0}
    assert meter.means() == {}  # read means reset


READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__")


@pytest.mark.slow
def test_training_steps_read_no_tensor_back_between_log_lines(tmp_path, monkeypatch):
    """With the device data path, drawing a batch and the D/G steps never read a tensor value on the host in
    the project's own code (a GPU would wait at each); the log line reads the loss sums once. On a GPU,
    ``bench --sync_debug`` checks library code too."""
    data = make_tiny_dataset(tmp_path / "d", n=12, size=36)
    reads, in_step = [], [False]

    def watch(name, original):
        def wrapper(self, *args, **kwargs):
            caller = Path(sys._getframe(1).f_code.co_filename)
            # project code only: the venv may live inside the checkout (./test.sh puts it in .venv)
            if ROOT in caller.parents and not {"tests", "site-packages"} & set(caller.parts):
                reads.append((in_step[0], name, caller.name))
            return original(self, *args, **kwargs)
        return wrapper

    def inside_step(original):
        def wrapper(*args, **kwargs):
            in_step[0] = True
            try:
                return original(*args, **kwargs)
            finally:
                in_step[0] = False
        return wrapper

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, watch(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(TrainStep, "critic", inside_step(TrainStep.critic))
    monkeypatch.setattr(TrainStep, "generator", inside_step(TrainStep.generator))
    monkeypatch.setattr(device_batches, "prepare_batch", inside_step(device_batches.prepare_batch))
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "r", *TINY_MODEL,
                 "--batch_size", "4", "--niter", "1", "--niter_decay", "0", "--train_gen_iter", "1",
                 "--max_steps", "2", "--data_on_device", "on", "--resize_or_crop", "crop",
                 "--print_losses_freq", "4"]) == 0
    assert [r for r in reads if r[0]] == []
    assert (False, "tolist", "train_step.py") in reads  # the watch sees project code: the log line's one read
