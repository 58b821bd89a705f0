"""Real Inception FID (``--inception``): loading, refusals and the plumbing into ``metrics.evaluate``.

NVIDIA's ``inception-2015-12-05.pt`` is not available offline, so these tests use a tiny stand-in TorchScript module
with the same call signature (``module(uint8 N x 3 x H x W, return_features=True) -> N x 2048``): an average pool of
the image followed by a fixed random linear map. They test the plumbing (loading, the checks, batching, full frames
in, the per-pair and pooled batch distances, null without weights), NOT Inception's numbers: a value computed here
says nothing about what the real network would give.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from metrics import frechet
from metrics.evaluate import build_parser, evaluate, main
from metrics.integrity import NO_FACE

# torch 2.13 flags torch.jit as deprecated; NVIDIA's file exists only as TorchScript, so the loader must use it
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

FRAMES = 6
SIZE = 48


class StandInInception(torch.nn.Module):
    """Same interface as NVIDIA's TorchScript FID extractor; the features are a linear map of a 4 x 4 colour
    thumbnail (so identical frames give identical features and different clips different ones)."""

    def __init__(self, dim: int = frechet.INCEPTION_DIM):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(3 * 4 * 4, dim, generator=generator))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert x.dtype == torch.uint8, "the extractor takes uint8 images in 0..255"
        assert x.dim() == 4 and x.shape[1] == 3, "the extractor takes N x 3 x H x W"
        thumb = torch.nn.functional.adaptive_avg_pool2d(x.to(torch.float32) / 255.0, [4, 4]).flatten(1)
        features = thumb @ self.proj
        if return_features:
            return features
        return torch.softmax(features[:, :1008], dim=1)  # the real one's logits head: 1008 classes


def save_module(module: torch.nn.Module, path):
    torch.jit.script(module).save(str(path))
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return save_module(StandInInception(), tmp_path_factory.mktemp("weights") / "standin-inception.pt")


def clip(seed: int) -> list[np.ndarray]:
    """FRAMES smooth frames: a coloured background and a bright square that moves (no face in them)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, size=3)
    frames = []
    for t in range(FRAMES):
        frame = np.empty((SIZE, SIZE, 3), np.uint8)
        frame[:] = background
        y, x = 6 + 5 * t, 4 + 3 * t + seed
        frame[y:y + 12, x:x + 12] = rng.integers(150, 256, size=3)
        frames.append(frame)
    return frames


def write_frames(folder, frames):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """Two source clips; one result is an exact copy of clip_a, the other is clip_b's frames paired with clip_a."""
    root = tmp_path_factory.mktemp("fid")
    a, b = clip(1), clip(2)
    write_frames(root / "sources" / "clip_a", a)
    write_frames(root / "sources" / "clip_b", b)
    write_frames(root / "both" / "clip_a_copy", a)
    write_frames(root / "both" / "clip_a_other", b)
    write_frames(root / "copy_only" / "clip_a_copy", a)
    return root


def run(layout, results: str, out: str, **kwargs) -> dict:
    return evaluate(layout / results, layout / "sources", out=layout / out, report=False, **kwargs)


# ---------------------------------------------------------------------------------------- the extractor

@pytest.mark.numeric
def test_loader_accepts_the_interface_and_batches(standin):
    extractor = frechet.InceptionFeatures(standin)
    frames = np.stack(clip(1) + clip(2))
    features = extractor.features(frames)
    assert features.shape == (2 * FRAMES, frechet.INCEPTION_DIM) and features.dtype == np.float64
    small_batches = frechet.InceptionFeatures(standin, batch_size=5).features(frames)  # 5 + 5 + 2 frames
    # fp32 kernels pick their summation order by batch shape, so the same frame may come out a few ulps apart in
    # another batch. Bound: a 48-term fp32 dot product errs by at most 48 * eps * sum|x * w| per feature.
    thumbs = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255.0,
                                                     [4, 4]).flatten(1)
    bound = 48 * np.finfo(np.float32).eps * (thumbs.abs() @ StandInInception().proj.double().abs()).numpy()
    assert np.all(np.abs(small_batches - features) <= 2 * bound + 1e-12)
    assert not np.allclose(small_batches[::-1], features, atol=1e-3)  # a batching slip would show far above that
    assert extractor.features(frames[:0]).shape == (0, frechet.INCEPTION_DIM)


def test_bad_weights_are_refused_naming_the_file(tmp_path, standin):
    missing = tmp_path / "nowhere" / frechet.INCEPTION_FILE
    with pytest.raises(FileNotFoundError, match="not a file") as err:
        frechet.InceptionFeatures(missing)
    assert str(missing) in str(err.value) and frechet.INCEPTION_FILE in str(err.value)
    with pytest.raises(FileNotFoundError, match="not a file"):
        frechet.InceptionFeatures(tmp_path)  # a folder
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    state_dict = tmp_path / "state_dict.pt"  # the usual mix-up: torch.save weights, not a TorchScript module
    torch.save(StandInInception().state_dict(), state_dict)
    for path in (noise, state_dict):
        with pytest.raises(ValueError, match="torch.jit.load cannot read it") as err:
            frechet.InceptionFeatures(path)
        assert str(path) in str(err.value) and frechet.INCEPTION_FILE in str(err.value)
    wrong = save_module(StandInInception(dim=10), tmp_path / "wrong_shape.pt")
    with pytest.raises(ValueError, match=r"returned \(2, 10\) for 2 images, expected 2 x 2048") as err:
        frechet.InceptionFeatures(wrong)
    assert str(wrong) in str(err.value)

    class NoFeatures(torch.nn.Module):  # a TorchScript classifier without the return_features switch
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.float().mean(dim=[2, 3])

    other = save_module(NoFeatures(), tmp_path / "classifier.pt")
    with pytest.raises(ValueError, match="the module failed on uint8 images") as err:
        frechet.InceptionFeatures(other)
    assert str(other) in str(err.value)
    with pytest.raises(ValueError, match="not a torch device"):
        frechet.InceptionFeatures(standin, device="gpu0")


def test_command_line_refuses_bad_weights_with_exit_2(layout, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    args = ["--results", str(layout / "copy_only"), "--sources", str(layout / "sources"), "--out", str(tmp_path)]
    assert main([*args, "--inception", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and frechet.INCEPTION_FILE in err and "MEGAN_INCEPTION" in err  # the fix names both
    monkeypatch.setenv("MEGAN_INCEPTION", str(bad))
    assert build_parser().parse_args(args).inception == str(bad)  # the environment gives the default
    assert main(args) == 2
    assert "came from $MEGAN_INCEPTION" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()  # refused before any clip was measured


# ---------------------------------------------------------------------------------------- in the evaluation

@pytest.mark.numeric
def test_fid_inception_per_pair_and_batch(layout, standin):
    doc = run(layout, "both", "eval_both", inception=standin)
    pairs = {p["pair"]: p for p in doc["pairs"]}
    assert set(pairs) == {"clip_a_copy", "clip_a_other"}
    # the stand-in frames hold no face, so no pair is "ok"; FID reads whole frames and is computed all the same
    assert {p["status"] for p in doc["pairs"]} == {NO_FACE}
    same, other = pairs["clip_a_copy"]["metrics"]["fid_inception"], pairs["clip_a_other"]["metrics"]["fid_inception"]
    assert np.isfinite(other) and other > 1.0
    assert same == pytest.approx(0.0, abs=1e-6 * other)  # a copy of the source: the same features
    # pooled: clip_a's frames against both results' frames
    assert doc["batch"]["fid_inception_frames"] == {"real": FRAMES, "generated": 2 * FRAMES}
    assert 0.0 < doc["batch"]["fid_inception"] < other
    assert doc["inputs"]["inception"] == str(standin) and len(doc["inputs"]["inception_sha256"]) == 64
    assert not any("Inception" in n for n in doc["batch"]["notes"] + pairs["clip_a_copy"]["notes"])
    assert doc["metrics"]["fid_inception"]["direction"] == "lower"
    # frames without a face are still scored: FID reads the full frames, not the face crops
    assert pairs["clip_a_copy"]["no_face_result"] == list(range(FRAMES))
    assert pairs["clip_a_copy"]["metrics"]["fd_dlib128"] is None

    copy_only = run(layout, "copy_only", "eval_copy", inception=frechet.InceptionFeatures(standin))
    assert copy_only["batch"]["fid_inception"] == pytest.approx(0.0, abs=1e-6 * other)
    with open(layout / "eval_copy" / "metrics.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["fid_inception"]) == pytest.approx(0.0, abs=1e-6 * other)


def test_without_weights_fid_inception_is_null_and_said_so(layout):
    doc = run(layout, "both", "eval_none")
    for pair in doc["pairs"]:
        assert pair["metrics"]["fid_inception"] is None
        assert frechet.INCEPTION_ABSENT in pair["notes"]
    assert doc["batch"]["fid_inception"] is None and doc["batch"]["fid_inception_frames"] is None
    assert frechet.INCEPTION_ABSENT == "Inception FID: not computed (no --inception weights)"
    assert frechet.INCEPTION_ABSENT in doc["batch"]["notes"]
    assert doc["inputs"]["inception"] is None
    saved = json.loads((layout / "eval_none" / "metrics.json").read_text())
    # Which AU estimator calibration scored the AUs (the shipped one, unless $MEGAN_AU_CALIBRATION names a refit).
    assert saved["inputs"]["au_calibration"]["file"].endswith("au_calibration.json")
    assert saved["inputs"]["au_calibration"]["source"].startswith("python -m openface.calibrate on")
    assert saved["batch"]["fid_inception"] is None  # null in the file, never 0
    with open(layout / "eval_none" / "metrics.csv", newline="") as fh:
        assert all(row["fid_inception"] == "" for row in csv.DictReader(fh))


def test_report_says_whether_inception_fid_was_computed(layout, standin):
    from metrics.report import render

    without = run(layout, "copy_only", "eval_report_none")
    assert "Inception FID: not computed (no --inception weights)" in render(without, [{} for _ in without["pairs"]])
    with_fid = run(layout, "copy_only", "eval_report", inception=standin)
    page = render(with_fid, [{} for _ in with_fid["pairs"]])
    assert "Batch Inception FID" in page and str(standin) in page and "fid_<wbr>inception" in page
