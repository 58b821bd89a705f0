"""ONNX export of the generator (tools/export_onnx.py): ONNX Runtime gives test mode's frames."""
import hashlib
import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="optional ONNX export: onnx not installed (requirements.txt pins it)")
ort = pytest.importorskip("onnxruntime", reason="optional ONNX export: onnxruntime not installed "
                                                "(requirements.txt pins it)")

from checkpoints import native as ckpt  # noqa: E402
from helpers import ROOT, TINY_MODEL  # noqa: E402
from models.model_registry import build_generator  # noqa: E402
from options import build_parser  # noqa: E402
from solvers import composition  # noqa: E402
from solvers.tester import SequenceGenerator  # noqa: E402
from tools import export_onnx  # noqa: E402

pytestmark = pytest.mark.onnx  # every test here exports with torch.onnx and runs onnxruntime

BUNDLED = ROOT / "pretrained" / "ganimation_cpu_small.pth"
# 0..255 levels: a float difference of ~1e-6 can flip one rounding. Measured (AMD EPYC, torch CPU kernels under
# ATEN_CPU_CAPABILITY=default, avx2 and its own avx512, against ONNX Runtime's): at most 1 level in every test.
TOLERANCE = 1


def tiny_model_args(model: str) -> dict:
    return composition.model_args_from_options(build_parser().parse_args([*TINY_MODEL, "--model", model]))


def random_generator_state(model_args: dict, seed: int = 0) -> dict:
    """Random weights large enough that AUs visibly change the output (N2ME's AdaIN starts at zero otherwise)."""
    torch.manual_seed(seed)
    g = build_generator(model_args)
    for m in g.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.weight, 0.0, 0.15)
            if m.bias is not None:
                torch.nn.init.normal_(m.bias, 0.0, 0.1)
        elif isinstance(m, torch.nn.InstanceNorm2d) and m.affine:
            torch.nn.init.normal_(m.weight, 1.0, 0.1)
            torch.nn.init.normal_(m.bias, 0.0, 0.1)
    return g.state_dict()


@pytest.fixture(scope="module", params=["ganimation", "n2me_unet"])
def tiny_run(request, tmp_path_factory):
    """A run folder with one native checkpoint of a tiny, randomly initialised generator."""
    args = tiny_model_args(request.param)
    run = tmp_path_factory.mktemp(f"onnx_{request.param}") / "run"
    run.mkdir()
    ckpt.save_atomic({"kind": ckpt.KIND, "format_version": ckpt.FORMAT_VERSION,
                      "progress": {"epoch": 1, "batch": 0, "step": 0, "images": 0}, "model": args,
                      "G": random_generator_state(args)}, ckpt.epoch_path(run, 1))
    return run


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ort_matches_test_mode(onnx_file, checkpoint, batch_sizes=(1, 5)) -> list[int]:
    """Frames from ONNX Runtime vs ``SequenceGenerator.generate`` (test mode) on one face; the largest differences."""
    model = SequenceGenerator(checkpoint, torch.device("cpu"))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    rng = np.random.default_rng(3)
    template = torch.rand(3, model.image_size, model.image_size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    template_aus = rng.uniform(0, 5, model.schema.n).astype(np.float32)
    diffs = []
    for n in batch_sizes:
        targets = rng.uniform(0, 5, (n, model.schema.n)).astype(np.float32)
        expected = model.generate(template, targets, template_aus=template_aus)
        feed = {"image": template[None].expand(n, -1, -1, -1).numpy().copy(), "aus": targets,
                "source_aus": np.repeat(template_aus[None], n, axis=0)}
        frames = session.run(["frames"], {k: feed[k] for k in names})[0]
        assert frames.dtype == np.uint8 and frames.shape == expected.shape == (n, model.image_size,
                                                                              model.image_size, 3)
        if n > 1:  # the AUs drive the picture: a test on constant frames would prove nothing
            assert np.abs(frames[0].astype(int) - frames[1].astype(int)).max() > 10
        diffs.append(int(np.abs(frames.astype(int) - expected.astype(int)).max()))
    return diffs


@pytest.mark.numeric
def test_tiny_generator_exports_and_onnx_runtime_gives_test_modes_frames(tiny_run, tmp_path, capsys):
    out = tmp_path / "g.onnx"
    assert export_onnx.main([str(tiny_run), "--out", str(out), "--bench_runs", "1", "--bench_batch", "4"]) == 0
    printed = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch" in printed and "frames/s" in printed

    checkpoint = ckpt.epoch_path(tiny_run, 1)
    info = json.loads((tmp_path / "g.onnx.json").read_text())
    name = info["model"]["name"]
    assert info["checkpoint_sha256"] == sha256(checkpoint) and info["opset"] == export_onnx.DEFAULT_OPSET
    assert info["check"]["passed"] and info["check"]["max_abs_diff"]["frames_levels"] <= TOLERANCE
    assert info["check"]["max_abs_diff"]["result"] < 1e-4
    assert [i["name"] for i in info["inputs"]] == (["image", "aus", "source_aus"] if name == "n2me_unet"
                                                   else ["image", "aus"])
    assert [o["name"] for o in info["outputs"]] == (["frames", "result"] if name == "n2me_unet"
                                                    else ["frames", "result", "attention"])
    assert info["inputs"][0]["shape"] == ["batch", 3, 32, 32] and info["outputs"][0]["shape"] == ["batch", 32, 32, 3]
    assert info["outputs"][0]["dtype"] == "uint8" and info["benchmark"]["batch"] == 4  # timings: recorded only

    diffs = ort_matches_test_mode(out, checkpoint)
    print(f"{name}: ORT vs test mode, batch 1 and 5: largest difference {diffs} of 255 levels")
    assert max(diffs) <= TOLERANCE


@pytest.mark.numeric
@pytest.mark.skipif(not BUNDLED.is_file(), reason=f"bundled weights not present at {BUNDLED}")
def test_bundled_model_is_the_default_source_and_exports(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export_onnx, "BUNDLED_CHECKPOINT", BUNDLED)
    out = tmp_path / "bundled.onnx"
    assert export_onnx.main(["--out", str(out), "--bench_runs", "0", "--opset", "18"]) == 0
    assert "bundled model" in capsys.readouterr().out
    info = json.loads((tmp_path / "bundled.onnx.json").read_text())
    assert info["checkpoint_sha256"] == sha256(BUNDLED) and info["opset"] == 18 and info["benchmark"] is None
    assert info["inputs"][0]["shape"] == ["batch", 3, 64, 64]
    assert max(ort_matches_test_mode(out, BUNDLED)) <= TOLERANCE


@pytest.mark.numeric
def test_seed_generator_file_is_imported_as_test_mode_imports_it(tmp_path):
    args = tiny_model_args("ganimation")
    seed_file = tmp_path / "seed" / "3_net_gen.pth"  # ULME-GAN / ganimation_replicate: the toolkit's key names
    seed_file.parent.mkdir()
    torch.save(random_generator_state(args), seed_file)
    out = tmp_path / "seed.onnx"
    assert export_onnx.main([str(seed_file.parent), "--out", str(out), "--bench_runs", "0"]) == 0
    info = json.loads((tmp_path / "seed.onnx.json").read_text())
    assert info["imported_from"] == "replicate" and info["checkpoint_sha256"] == sha256(seed_file)
    assert max(ort_matches_test_mode(out, seed_file, batch_sizes=(2,))) <= TOLERANCE


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_checkpoint_is_a_clear_error_naming_the_file(tiny_run, tmp_path, capsys, damage):
    bad = tmp_path / "broken.pth"
    good = ckpt.epoch_path(tiny_run, 1).read_bytes()
    bad.write_bytes(b"not a checkpoint at all" if damage == "garbage" else good[:len(good) // 2])
    out = tmp_path / "o.onnx"
    assert export_onnx.main([str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "o.onnx.json").exists()


def test_disagreement_above_tolerance_exits_1_and_writes_nothing(tiny_run, tmp_path, monkeypatch, capsys):
    run_onnx = export_onnx.run_onnx

    def off_by_three(session, inputs):
        out = run_onnx(session, inputs)
        out["frames"] = np.clip(out["frames"].astype(int) + 3, 0, 255).astype(np.uint8)
        return out

    monkeypatch.setattr(export_onnx, "run_onnx", off_by_three)
    out = tmp_path / "g.onnx"
    assert export_onnx.main([str(tiny_run), "--out", str(out), "--bench_runs", "0"]) == 1
    err = capsys.readouterr().err
    assert "disagree" in err and re.search(r"frames [34] of 255 levels", err)  # +3, on a possible 1 already
    assert not out.exists() and not (tmp_path / "g.onnx.json").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_missing_onnx_runtime_is_a_clear_error(tiny_run, tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    assert export_onnx.main([str(tiny_run), "--out", str(tmp_path / "g.onnx")]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime" in err and "pip install" in err


@pytest.mark.numeric
def test_dynamo_exporter(tmp_path):
    pytest.importorskip("onnxscript", reason="--exporter dynamo needs onnxscript (pinned in requirements.txt)")
    args = tiny_model_args("ganimation")
    run = tmp_path / "run"
    run.mkdir()
    ckpt.save_atomic({"kind": ckpt.KIND, "format_version": ckpt.FORMAT_VERSION, "progress": {"epoch": 1},
                      "model": args, "G": random_generator_state(args)}, ckpt.epoch_path(run, 1))
    out = tmp_path / "d.onnx"
    assert export_onnx.main([str(run), "--out", str(out), "--bench_runs", "0", "--exporter", "dynamo",
                             "--opset", "18"]) == 0
    assert max(ort_matches_test_mode(out, ckpt.epoch_path(run, 1))) <= TOLERANCE
