"""Importing the seed systems' checkpoints (issue 7): ULME-GAN / ganimation_replicate, GANimation, N2ME.

Every foreign file here is built in the test from a randomly initialised native network, under the file and key
names that seed writes (../shared/reference/seed-systems.md section 5, checked against the seeds' code), so an
import is right exactly when the imported networks compute what the native ones compute.
Run with ``pytest -s`` to see the measured differences.
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from checkpoints import importers, locate, read
from checkpoints import native as ckpt
from checkpoints.__main__ import main as convert_main
from helpers import ROOT, make_tiny_dataset
from main import main
from models.networks import Discriminator, Generator
from options import build_parser

EXAMPLES = ROOT / "examples" / "au_matrices"
SMALL = {"ngf": 8, "ndf": 8, "n_blocks": 2, "final_size": 32}  # 4 critic layers at 32 px
# The seed formats and the InstanceNorm variant each one trains with.
SEED_NORMS = {"ulme": "instance", "replicate": "instance", "ganimation": "instance_affine", "n2me": "instance"}


# ------------------------------------------------------------------------------------------------ building files
def random_networks(norm, aus_nc=17, ngf=8, ndf=8, n_blocks=2, final_size=32, seed=0, conv_bias=True):
    """Native G and D with every parameter random (norm scales near 1), so no mapping error can hide."""
    torch.manual_seed(seed)
    G = Generator(aus_nc=aus_nc, ngf=ngf, n_blocks=n_blocks, norm=norm)
    D = Discriminator(aus_nc=aus_nc, final_size=final_size, ndf=ndf)
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                is_norm_scale = p.dim() == 1 and name.endswith("weight")
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if is_norm_scale else 0.0))
        if not conv_bias:  # N2ME's generator convolutions have no bias: the native twin gets zeros
            for m in G.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None:
                    m.bias.zero_()
    return G.eval(), D.eval()


def gan_generator_keys(G, attention):
    """GANimation ('attetion_reg') / N2ME ('attention_reg') generator names: main.*, main.K.main.J, heads."""
    out = {}
    for key, value in G.state_dict().items():
        key = re.sub(r"^model\.(\d+)\.conv_block\.", r"main.\1.main.", key)
        key = re.sub(r"^model\.", "main.", key)
        key = key.replace("color_top.0.", "img_reg.0.").replace("au_top.0.", f"{attention}.0.")
        out[key] = value.clone()
    return out


def gan_critic_keys(D):
    """GANimation / N2ME critic names: main.* convolutions, conv1 (critic head), conv2 (AU head)."""
    return {re.sub(r"^model\.", "main.", k).replace("dis_top.", "conv1.").replace("aus_top.", "conv2."): v.clone()
            for k, v in D.state_dict().items()}


def seed_state_dicts(fmt, G, D):
    if fmt in ("ulme", "replicate"):  # the toolkit already uses these names
        return {k: v.clone() for k, v in G.state_dict().items()}, {k: v.clone() for k, v in D.state_dict().items()}
    if fmt == "ganimation":
        return gan_generator_keys(G, "attetion_reg"), gan_critic_keys(D)
    g = {k: v for k, v in gan_generator_keys(G, "attention_reg").items() if not k.endswith(".bias")}
    return g, gan_critic_keys(D)


def seed_file_names(fmt, epoch):
    return {"ulme": (f"{epoch}_net_gen.pth", f"{epoch}_net_dis.pth"),
            "replicate": (f"{epoch}_net_gen.pth", f"{epoch}_net_dis.pth"),
            "ganimation": (f"net_epoch_{epoch}_id_G.pth", f"net_epoch_{epoch}_id_D.pth"),
            "n2me": (f"net_epoch_{epoch}_G.pth", f"net_epoch_{epoch}_D.pth")}[fmt]


def write_seed_run(folder, fmt, G, D, epoch=3, critic=True, **save_kwargs):
    """A run folder as the seed leaves it (with its optimizer files, which an import ignores)."""
    folder.mkdir(parents=True, exist_ok=True)
    g_sd, d_sd = seed_state_dicts(fmt, G, D)
    g_name, d_name = seed_file_names(fmt, epoch)
    torch.save(g_sd, folder / g_name, **save_kwargs)
    if critic:
        torch.save(d_sd, folder / d_name, **save_kwargs)
    optim = torch.optim.Adam(G.parameters()).state_dict()
    if fmt == "ganimation":
        torch.save(optim, folder / f"opt_epoch_{epoch}_id_G.pth")
    if fmt == "n2me":
        torch.save(optim, folder / f"net_epoch_{epoch}_G_optim.pth")
    return folder / g_name, folder / d_name


def seed_run(tmp_path, fmt, **net_kwargs):
    G, D = random_networks(SEED_NORMS[fmt], conv_bias=fmt != "n2me", **net_kwargs)
    g_file, d_file = write_seed_run(tmp_path / f"{fmt}_run", fmt, G, D)
    return G, D, g_file, d_file


# ------------------------------------------------------------------------------------------------ comparing
def sample_input(aus_nc=17, size=32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(3, 3, size, size, generator=gen) * 2 - 1, torch.rand(3, aus_nc, generator=gen)


@torch.no_grad()
def generator_difference(native_G, state):
    """Largest |difference| over result, attention and colour between the native and the imported generator."""
    imported = Generator(**state["model"]["generator"])
    ckpt.load_state_strict(imported, state["G"], "generator", "imported")
    imported.eval()
    x, y = sample_input(state["model"]["generator"]["aus_nc"])
    return max((a - b).abs().max().item() for a, b in zip(native_G(x, y), imported(x, y)))


@torch.no_grad()
def critic_difference(native_D, state):
    imported = Discriminator(**state["model"]["discriminator"])
    ckpt.load_state_strict(imported, state["D"], "critic", "imported")
    x, _ = sample_input(size=state["model"]["discriminator"]["final_size"])
    return max((a - b).abs().max().item() for a, b in zip(native_D(x), imported(x)))


# ------------------------------------------------------------------------------------------------ key names
DOCUMENTED = {  # seed-systems.md section 5 at full depth (6 blocks, 6 critic layers, 128 px); ngf=4, ndf=2 here
    "replicate": {
        "G": {"model.0.weight": (4, 20, 7, 7), "model.0.bias": (4,), "model.3.weight": (8, 4, 4, 4),
              "model.6.weight": (16, 8, 4, 4), **{f"model.{k}.conv_block.{j}.weight": (16, 16, 3, 3)
                                                  for k in range(9, 15) for j in (0, 3)},
              "model.15.weight": (16, 8, 4, 4), "model.18.weight": (8, 4, 4, 4),
              "color_top.0.weight": (3, 4, 7, 7), "au_top.0.weight": (1, 4, 7, 7)},
        "D": {**{f"model.{k}.{p}": None for k in (0, 2, 4, 6, 8, 10) for p in ("weight", "bias")},
              "dis_top.weight": (1, 64, 3, 3), "aus_top.weight": (17, 64, 2, 2)},
        "absent": ["model.1.weight", "color_top.0.bias"]},
    "ganimation": {
        "G": {"main.0.weight": (4, 20, 7, 7), "main.1.weight": (4,), "main.1.bias": (4,),
              "main.9.main.0.weight": (16, 16, 3, 3), "main.9.main.1.weight": (16,),
              "main.14.main.3.weight": (16, 16, 3, 3), "main.14.main.4.bias": (16,),
              "main.15.weight": (16, 8, 4, 4), "main.18.weight": (8, 4, 4, 4),
              "img_reg.0.weight": (3, 4, 7, 7), "attetion_reg.0.weight": (1, 4, 7, 7)},
        "D": {**{f"main.{k}.{p}": None for k in (0, 2, 4, 6, 8, 10) for p in ("weight", "bias")},
              "conv1.weight": (1, 64, 3, 3), "conv2.weight": (17, 64, 2, 2)},
        "absent": ["main.0.bias", "main.9.main.0.bias", "attention_reg.0.weight"]},
    "n2me": {
        "G": {"main.0.weight": (4, 20, 7, 7), "main.9.main.3.weight": (16, 16, 3, 3),
              "main.15.weight": (16, 8, 4, 4), "img_reg.0.weight": (3, 4, 7, 7),
              "attention_reg.0.weight": (1, 4, 7, 7)},
        "D": {"main.10.bias": None, "conv1.weight": (1, 64, 3, 3), "conv2.weight": (17, 64, 2, 2)},
        "absent": ["main.0.bias", "main.1.weight", "attetion_reg.0.weight"]},
}


@pytest.mark.parametrize("fmt", ["replicate", "ganimation", "n2me"])
@pytest.mark.slow
def test_documented_names_and_shapes_import_with_inferred_arguments(tmp_path, fmt):
    full = {"ngf": 4, "ndf": 2, "n_blocks": 6, "final_size": 128}
    G, D, g_file, d_file = seed_run(tmp_path, fmt, **full)
    g_sd, d_sd = torch.load(g_file, weights_only=True), torch.load(d_file, weights_only=True)
    for role, sd in (("G", g_sd), ("D", d_sd)):
        for key, shape in DOCUMENTED[fmt][role].items():
            assert key in sd, f"{fmt} {role}: {key} missing"
            assert shape is None or tuple(sd[key].shape) == shape, (key, tuple(sd[key].shape))
    assert not [k for k in DOCUMENTED[fmt]["absent"] if k in g_sd]

    imported = importers.import_checkpoint(g_file.parent)
    assert imported.model_args["generator"] == {"img_nc": 3, "aus_nc": 17, "ngf": 4, "n_blocks": 6,
                                                "norm": SEED_NORMS[fmt]}
    assert imported.model_args["discriminator"] == {"img_nc": 3, "aus_nc": 17, "final_size": 128, "ndf": 2,
                                                    "n_layers": 6}
    assert imported.model_args["aus_schema"] == "openface17" and imported.epoch == 3
    state = imported.native_state()
    diff_g, diff_d = generator_difference(G, state), critic_difference(D, state)
    print(f"\n{fmt:<10} full depth  max|native - imported|: generator {diff_g:.3g}, critic {diff_d:.3g}")
    assert diff_g <= 1e-6 and diff_d <= 1e-6


# ------------------------------------------------------------------------------------------------ equality
@pytest.mark.parametrize("how", ["auto", "explicit"])
@pytest.mark.parametrize("fmt", ["ulme", "replicate", "ganimation", "n2me"])
def test_imported_networks_compute_what_the_native_ones_compute(tmp_path, fmt, how):
    G, D, g_file, _ = seed_run(tmp_path, fmt)
    imported = importers.import_checkpoint(g_file.parent, "auto" if how == "auto" else fmt)
    state = imported.native_state()
    assert state["model"]["generator"]["norm"] == SEED_NORMS[fmt]
    diff_g, diff_d = generator_difference(G, state), critic_difference(D, state)
    print(f"\n{fmt:<10} {how:<8} norm={SEED_NORMS[fmt]:<15} max|native - imported|: generator {diff_g:.3g}, "
          f"critic {diff_d:.3g}")
    assert diff_g <= 1e-6 and diff_d <= 1e-6


def test_n2me_bias_free_generator_matches_a_biased_native_one(tmp_path):
    """Zero biases stand in for N2ME's absent ones: any bias before InstanceNorm is cancelled by it."""
    G, _ = random_networks("instance")  # random non-zero conv biases
    assert G.model[0].bias.abs().sum() > 0
    folder = tmp_path / "n2me"
    write_seed_run(folder, "n2me", G, _)  # the N2ME file drops the biases, as N2ME's networks have none
    state = importers.import_checkpoint(folder).native_state()
    diff = generator_difference(G, state)
    print(f"\nn2me bias-free vs biased native generator: max|difference| {diff:.3g} (rounding only)")
    # float32 rounding through several InstanceNorms: about 1e-5 on outputs in -1..1, and it differs between CPUs
    # (1.01e-5 on one machine); a bias that InstanceNorm did not cancel would move the outputs by about 1e-1.
    assert diff < 1e-4


def test_dataparallel_prefix_legacy_running_stats_and_legacy_serialisation(tmp_path):
    """Old GANimation files: module.-prefixed keys, PyTorch 0.3 InstanceNorm statistics, pre-1.6 file format."""
    G, D = random_networks("instance_affine")
    g_sd, d_sd = seed_state_dicts("ganimation", G, D)
    for key in [k for k, v in g_sd.items() if v.dim() == 1 and k.endswith("weight")]:  # every InstanceNorm
        g_sd[key[:-len("weight")] + "running_mean"] = torch.randn_like(g_sd[key])
        g_sd[key[:-len("weight")] + "running_var"] = torch.rand_like(g_sd[key]) + 0.5
    folder = tmp_path / "old"
    folder.mkdir()
    torch.save({f"module.{k}": v for k, v in g_sd.items()}, folder / "net_epoch_12_id_G.pth",
               _use_new_zipfile_serialization=False)
    torch.save({f"module.{k}": v for k, v in d_sd.items()}, folder / "net_epoch_12_id_D.pth",
               _use_new_zipfile_serialization=False)
    imported = importers.import_checkpoint(folder)
    notes = " ".join(imported.notes)
    assert "module." in notes and "legacy InstanceNorm running_mean/running_var" in notes
    assert imported.epoch == 12
    state = imported.native_state()
    diff_g, diff_d = generator_difference(G, state), critic_difference(D, state)
    print(f"\nganimation legacy file max|native - imported|: generator {diff_g:.3g}, critic {diff_d:.3g}")
    assert diff_g <= 1e-6 and diff_d <= 1e-6


def test_cuda_saved_n2me_files_load_on_a_cpu_machine(tmp_path):
    """N2ME saves straight from the GPU: storages tagged cuda:0 must open with the CPU map location."""
    G, D = random_networks("instance", conv_bias=False)

    def tag_as_cuda(storage):  # what torch.save records for tensors living on the first GPU
        return "cuda:0"

    registry = torch.serialization._package_registry
    torch.serialization.register_package(0, tag_as_cuda, lambda storage, location: None)
    try:
        write_seed_run(tmp_path / "n2me", "n2me", G, D)
    finally:
        registry[:] = [entry for entry in registry if entry[1] is not tag_as_cuda]
    g_file = tmp_path / "n2me" / "net_epoch_3_G.pth"
    if not torch.cuda.is_available():  # the file really is a CUDA one: without a map location it cannot open
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(g_file, weights_only=True)
    state = importers.import_checkpoint(g_file).native_state()
    diff = generator_difference(G, state)
    print(f"\nn2me CUDA-saved file on CPU: max|native - imported| {diff:.3g}")
    assert diff <= 1e-6


def test_replicate_dropout_blocks_are_realigned(tmp_path):
    """replicate --use_dropout: Dropout sits at conv_block.3, so the second convolution is stored as conv_block.4."""
    G, D = random_networks("instance")
    g_sd, d_sd = seed_state_dicts("replicate", G, D)
    for key in [k for k in g_sd if ".conv_block.3." in k]:
        g_sd[key.replace(".conv_block.3.", ".conv_block.4.")] = g_sd.pop(key)
    (tmp_path / "r").mkdir()
    torch.save(g_sd, tmp_path / "r" / "5_net_gen.pth")
    imported = importers.import_checkpoint(tmp_path / "r" / "5_net_gen.pth")
    assert "--use_dropout" in " ".join(imported.notes)
    assert generator_difference(G, imported.native_state()) <= 1e-6


def test_n2me_18_au_neutral_generator_gets_the_n2me_schema(tmp_path):
    """N2ME's neutral model with --use_18_aus 1: 3 + 18 input channels."""
    G, D = random_networks("instance", aus_nc=18, conv_bias=False)
    write_seed_run(tmp_path / "n2me18", "n2me", G, D)
    state = importers.import_checkpoint(tmp_path / "n2me18").native_state()
    assert state["model"]["aus_schema"] == "n2me18" and state["model"]["discriminator"]["aus_nc"] == 18
    assert generator_difference(G, state) <= 1e-6


def test_imported_checkpoints_are_refused_for_exact_resume(tmp_path):
    _, _, g_file, _ = seed_run(tmp_path, "replicate")
    state = importers.import_checkpoint(g_file).native_state()
    with pytest.raises(ValueError, match=r"no optim_G, optim_D, rng, options \(weights imported from replicate\)"):
        ckpt.check_resumable(state, tmp_path / "epoch_0003.pth")


# ------------------------------------------------------------------------------------------------ detection
@pytest.mark.parametrize("fmt", ["replicate", "ganimation", "n2me"])
def test_auto_detection_names_the_format_and_why(tmp_path, fmt, caplog):
    _, _, g_file, _ = seed_run(tmp_path, fmt)
    imported = importers.import_checkpoint(g_file.parent, "auto")
    assert imported.format == fmt
    expected_keys = {"replicate": "color_top.0", "ganimation": "attetion_reg.0", "n2me": "attention_reg.0"}[fmt]
    assert expected_keys in imported.reason
    caplog.set_level("INFO")
    state = read(g_file, fmt="auto").state  # the loader test mode uses: it logs what it chose
    assert state["kind"] == ckpt.KIND
    assert f"import format: {fmt}" in caplog.text and "chosen by keys" in caplog.text


def test_keys_decide_over_file_names_and_epochs_resolve(tmp_path):
    G, D = random_networks("instance_affine")
    folder = tmp_path / "renamed"
    folder.mkdir()
    g_sd, d_sd = seed_state_dicts("ganimation", G, D)
    for epoch in (2, 10):  # GANimation weights saved under N2ME's names
        torch.save(g_sd, folder / f"net_epoch_{epoch}_G.pth")
        torch.save(d_sd, folder / f"net_epoch_{epoch}_D.pth")
    imported = importers.import_checkpoint(folder)
    assert imported.format == "ganimation" and "the keys decide" in imported.reason
    assert imported.epoch == 10 and imported.critic_file.name == "net_epoch_10_D.pth"  # latest by default
    assert importers.import_checkpoint(folder, load_epoch="2").epoch == 2


def test_native_checkpoints_pass_through_unchanged(tmp_path):
    G, D, g_file, _ = seed_run(tmp_path, "ganimation")
    native = tmp_path / "native.pth"
    assert convert_main(["convert", str(g_file.parent), "--out", str(native)]) == 0
    loaded = read(native, fmt="auto").state  # read once, then the native checks
    assert loaded["progress"] == read(native).state["progress"] and loaded["G"].keys() == G.state_dict().keys()
    assert locate.find_checkpoint(native, fmt="auto") == native
    with pytest.raises(ValueError, match="already a checkpoint of this toolkit"):
        importers.import_checkpoint(native)
    with pytest.raises(ValueError, match="not a checkpoint of this toolkit"):
        read(g_file, fmt="native")  # native asked for: a foreign file is refused, strictly


# ------------------------------------------------------------------------------------------------ bad input
def _damage(case, tmp_path):
    """Build a run folder, damage it as `case` says; returns (source, ckpt_format)."""
    fmt = "replicate" if case in ("wrong_explicit_format", "batchnorm") else "ganimation"
    G, D, g_file, d_file = seed_run(tmp_path, fmt)
    if case == "not_a_checkpoint":
        g_file.write_bytes(b"GIF89a not a checkpoint at all")
    elif case == "not_a_state_dict":
        torch.save([torch.zeros(3)], g_file)
    elif case == "optimizer_file":
        return g_file.with_name("opt_epoch_3_id_G.pth"), "auto"
    elif case == "pickled_module":
        torch.save(G, g_file)  # a whole nn.Module: unpickling it would run this toolkit's (or anyone's) code
    elif case == "critic_as_generator":
        return d_file, "auto"
    elif case == "generator_as_critic":
        d_file.write_bytes(g_file.read_bytes())
    elif case == "missing_key":
        sd = torch.load(g_file, weights_only=True)
        del sd["attetion_reg.0.weight"]
        torch.save(sd, g_file)
        return g_file, "ganimation"
    elif case == "shape_mismatch":
        sd = torch.load(g_file, weights_only=True)
        sd["main.9.main.0.weight"] = torch.zeros(32, 16, 3, 3)
        torch.save(sd, g_file)
    elif case == "critic_shape_mismatch":
        sd = torch.load(d_file, weights_only=True)
        sd["conv1.weight"] = torch.zeros(1, 64, 5, 5)
        torch.save(sd, d_file)
    elif case == "unexpected_key":
        sd = torch.load(g_file, weights_only=True)
        sd["main.9.main.7.weight"] = torch.zeros(32)
        torch.save(sd, g_file)
    elif case == "wrong_explicit_format":
        return g_file, "ganimation"
    elif case == "batchnorm":
        sd = torch.load(g_file, weights_only=True)
        sd["model.1.running_mean"] = torch.zeros(8)
        torch.save(sd, g_file)
    elif case == "n2me_unet":
        torch.save({"conv1.0.weight": torch.zeros(8, 3, 3, 3), "down1.main.2.weight": torch.zeros(16, 8, 3, 3),
                    "resblock4.adain1.std_style_fc.weight": torch.zeros(32, 17),
                    "up1.main.2.weight": torch.zeros(16, 64, 3, 3), "out.1.weight": torch.zeros(3, 16, 3, 3)},
                   g_file)
    elif case == "unknown_keys":
        torch.save({"encoder.layer1.weight": torch.zeros(3), "decoder.fc.weight": torch.zeros(3)}, g_file)
    elif case == "other_au_count":
        G5, D5 = random_networks("instance_affine", aus_nc=5)
        write_seed_run(g_file.parent, "ganimation", G5, D5)
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", "auto"
    return g_file.parent, "auto"


BAD_INPUT = {  # case -> phrases the error must contain (the format tried and the offending keys / files)
    "not_a_checkpoint": ["not a PyTorch checkpoint", "format detection (auto)"],
    "not_a_state_dict": ["not a network state_dict", "list"],
    "optimizer_file": ["optimizer state", "generator file"],
    "pickled_module": ["refused", "execute code", "models.networks.Generator", "state_dict()"],
    "critic_as_generator": ["holds a critic", "conv1, conv2", "format detection (auto)", "net_epoch_3_id_G.pth"],
    "generator_as_critic": ["net_epoch_3_id_D.pth", "holds a generator", "format 'ganimation'"],
    "missing_key": ["format 'ganimation' (original GANimation, --ckpt_format ganimation)",
                    "missing (1): attetion_reg.0.weight"],
    "shape_mismatch": ["format 'ganimation' (original GANimation, detected)",
                       "shape mismatch (1): main.9.main.0.weight: file (32, 16, 3, 3) vs expected (32, 32, 3, 3)"],
    "critic_shape_mismatch": ["critic weights", "conv1.weight: file (1, 64, 5, 5) vs expected (1, 64, 3, 3)"],
    "unexpected_key": ["unexpected (1): main.9.main.7.weight"],
    "wrong_explicit_format": ["tried format 'ganimation'", "ULME-GAN / ganimation_replicate", "model.*"],
    "batchnorm": ["format 'replicate'", "BatchNorm", "model.1.running_mean"],
    "n2me_unet": ["N2ME's micro-expression generator", "arrives with the N2ME pipeline"],
    "unknown_keys": ["not a recognised checkpoint", "encoder.layer1.weight"],
    "other_au_count": ["takes 5 AU values", "openface17=17"],
    "empty_folder": ["holds no checkpoints", "net_epoch_<E>_id_G.pth", "<E>_net_gen.pth"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_explained(tmp_path, case):
    source, fmt = _damage(case, tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        importers.import_checkpoint(source, fmt)
    message = str(info.value)
    print(f"\n{case}: {message}")
    for phrase in BAD_INPUT[case]:
        assert phrase in message, (phrase, message)


def test_test_mode_reports_a_critic_given_as_generator(tmp_path, capsys):
    _, _, _, d_file = seed_run(tmp_path, "replicate")
    assert main(["--mode", "test", "--motion", "none", "--ckpt", str(d_file), "--gpu_ids", "-1", "--no_progress",
                 "--aus_matrix", str(EXAMPLES / "positive.csv")]) == 2
    err = capsys.readouterr().err
    assert "holds a critic" in err and "3_net_gen.pth" in err


# ------------------------------------------------------------------------------------------------ conversion
def template_image(tmp_path):
    path = tmp_path / "template.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path)
    return path


def run_test_mode(ckpt_source, tmp_path, results, *extra):
    return main(["--mode", "test", "--motion", "none",
                 "--ckpt", str(ckpt_source), "--aus_matrix", str(EXAMPLES / "positive.csv"),
                 "--template", str(template_image(tmp_path)), "--no_video", "--max_dataset_size", "3",
                 "--gpu_ids", "-1", "--no_progress", "--results_dir", str(tmp_path / results), *extra])


def frames_of(results):
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    return folder, [np.asarray(Image.open(p)) for p in sorted((folder / "frames").glob("*.png"))]


def test_convert_writes_a_native_checkpoint_that_test_mode_runs(tmp_path, capsys):
    G, D, g_file, _ = seed_run(tmp_path, "n2me")
    out = tmp_path / "converted" / "native.pth"
    assert convert_main(["convert", str(g_file.parent), "--out", str(out), "--ckpt_format", "n2me",
                           "--epoch", "3"]) == 0
    printed = capsys.readouterr().out
    assert "format: n2me" in printed and "ngf=8" in printed and "norm=instance" in printed
    assert "final_size=32" in printed and f"wrote {out}" in printed

    state = read(out).state
    assert state["kind"] == ckpt.KIND and state["progress"] == {"epoch": 3, "batch": 0, "step": 0, "images": 0}
    assert state["model"]["generator"] == {"img_nc": 3, "aus_nc": 17, "ngf": 8, "n_blocks": 2, "norm": "instance"}
    assert "D" in state and "optim_G" not in state and "rng" not in state
    assert state["imported_from"]["format"] == "n2me"
    assert generator_difference(G, state) <= 1e-6

    assert run_test_mode(out, tmp_path, "res_native") == 0
    folder, converted_frames = frames_of(tmp_path / "res_native")
    assert folder.name == "positive_ganimation_3_no-re_code_1V1" and len(converted_frames) == 3
    # the same sequence straight from the foreign folder, no conversion: identical frames
    assert run_test_mode(g_file.parent, tmp_path, "res_foreign") == 0
    _, foreign_frames = frames_of(tmp_path / "res_foreign")
    assert all(np.array_equal(a, b) for a, b in zip(converted_frames, foreign_frames))

    assert convert_main(["convert", str(g_file.parent), "--out", str(out)]) == 2  # never overwrites silently
    assert "--force" in capsys.readouterr().err


@pytest.mark.slow
def test_convert_and_inspect_as_modules(tmp_path):
    _, _, g_file, _ = seed_run(tmp_path, "ganimation")
    inspect = subprocess.run([sys.executable, "-m", "checkpoints", "inspect", str(g_file)], cwd=ROOT,
                             capture_output=True, text=True)
    assert inspect.returncode == 0, inspect.stderr
    assert "format: ganimation" in inspect.stdout and "norm=instance_affine" in inspect.stdout
    assert "Warning" not in inspect.stderr
    out = tmp_path / "g.pth"
    convert = subprocess.run([sys.executable, "-m", "checkpoints", "convert", str(g_file), "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True)
    assert convert.returncode == 0, convert.stderr
    assert read(out).state["model"]["discriminator"]["final_size"] == 32


def test_generator_alone_converts_with_a_default_size_but_cannot_fine_tune(tmp_path, capsys):
    G, D = random_networks("instance")
    g_file, _ = write_seed_run(tmp_path / "ulme", "ulme", G, D, epoch=40, critic=False)
    out = tmp_path / "g_only.pth"
    assert convert_main(["convert", str(g_file), "--out", str(out), "--ckpt_format", "ulme"]) == 0
    assert "final_size=128 (no critic file" in capsys.readouterr().out
    state = read(out).state
    assert "D" not in state and state["model"]["discriminator"]["final_size"] == 128
    assert generator_difference(G, state) <= 1e-6
    # fine-tuning needs the critic: from the foreign folder and from the converted file
    data = make_tiny_dataset(tmp_path / "data", n=8)
    common = ["--data_root", str(data), "--load_epoch", "40", "--gpu_ids", "-1", "--no_progress"]
    assert main(["--ckpt_dir", str(tmp_path / "ulme"), *common]) == 2
    assert "no critic file was found" in capsys.readouterr().err
    (tmp_path / "conv").mkdir()
    out.rename(tmp_path / "conv" / "epoch_0040.pth")
    assert main(["--ckpt_dir", str(tmp_path / "conv"), *common]) == 2
    assert "holds no critic (D) weights" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ main.py hooks
def _has_ckpt_format_flag():
    return any(a.dest == "ckpt_format" for a in build_parser()._actions)


@pytest.mark.parametrize("flag", [[], ["--ckpt_format", "auto"], ["--ckpt_format", "ganimation"]],
                         ids=["default", "auto", "explicit"])
def test_test_mode_runs_directly_on_a_foreign_run_folder(tmp_path, flag):
    if flag and not _has_ckpt_format_flag():
        pytest.skip("--ckpt_format is not in options/__init__.py yet (read with getattr, default auto)")
    _, _, g_file, _ = seed_run(tmp_path, "ganimation")
    assert run_test_mode(g_file.parent, tmp_path, "res", "--load_epoch", "3", *flag) == 0
    folder, frames = frames_of(tmp_path / "res")
    assert len(frames) == 3 and frames[0].shape == (256, 256, 3)
    assert str(g_file) in (folder / "run.json").read_text()


def test_fine_tuning_continues_from_a_foreign_run_folder(tmp_path, monkeypatch):
    """ULME-style transfer learning from a GANimation run: G and D both loaded (lr 0 keeps them as loaded), converted
    in memory: no native checkpoint is written anywhere to be read back."""
    G, D, g_file, _ = seed_run(tmp_path / "runs", "ganimation")
    data = make_tiny_dataset(tmp_path / "data", n=8, seed=3)
    saved = []
    real_save = ckpt.save_atomic
    monkeypatch.setattr(ckpt, "save_atomic", lambda state, path: (saved.append(Path(path)), real_save(state, path)))
    assert main(["--data_root", str(data), "--ckpt_dir", str(g_file.parent), "--load_epoch", "3",
                 "--epoch_count", "4", "--niter", "4", "--niter_decay", "0", "--lr", "0", "--name", "ft",
                 "--batch_size", "4", "--gpu_ids", "-1", "--no_progress", "--ngf", "99"]) == 0
    run = g_file.parent.parent / "ft"
    state = read(run / "epoch_0004.pth").state
    assert state["model"]["generator"]["ngf"] == 8 and state["model"]["generator"]["norm"] == "instance_affine"
    assert state["progress"]["step"] > 0
    diff_g, diff_d = generator_difference(G, state), critic_difference(D, state)
    print(f"\nfine-tuned at lr 0 from the GANimation folder: generator {diff_g:.3g}, critic {diff_d:.3g}")
    assert diff_g == 0 and diff_d == 0
    assert saved and all(path.parent == run for path in saved)  # only the new run's own checkpoints


# ------------------------------------------------------------------------------------------------ one read
def count_reads(monkeypatch) -> list[str]:
    """File names torch.load opens, whoever calls it (checkpoints.native, seed_formats or anything else)."""
    reads, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: (reads.append(Path(f).name), real_load(f, *a, **k))[1])
    return reads


@pytest.mark.parametrize("fmt", ["auto", "ganimation", "native"])
def test_test_mode_reads_the_checkpoint_once(tmp_path, monkeypatch, fmt):
    # --ckpt -> solvers.composition.generation_checkpoint -> checkpoints.read (resolve, one torch.load, import)
    # -> Tester -> SequenceGenerator(checkpoint) -> Checkpoint.generator(): nothing opens the file again.
    _, _, g_file, d_file = seed_run(tmp_path, "ganimation")
    source = g_file
    if fmt == "native":
        source = tmp_path / "native.pth"
        assert convert_main(["convert", str(g_file), "--out", str(source)]) == 0
    reads = count_reads(monkeypatch)
    assert run_test_mode(source, tmp_path, "r", "--ckpt_format", fmt) == 0
    # An import also reads the critic beside the generator, once: it tells the image size.
    assert reads == ([source.name] if fmt == "native" else [g_file.name, d_file.name])


def test_ckpt_format_is_honoured_in_test_mode(tmp_path, capsys):
    # Test mode used to load with "auto" whatever --ckpt_format said; a wrong format now fails, named.
    _, _, g_file, _ = seed_run(tmp_path, "ganimation")
    assert run_test_mode(g_file, tmp_path, "r", "--ckpt_format", "n2me") == 2
    assert "tried format 'n2me'" in capsys.readouterr().err
    assert run_test_mode(g_file, tmp_path, "r", "--ckpt_format", "native") == 2
    assert "not a checkpoint of this toolkit" in capsys.readouterr().err
