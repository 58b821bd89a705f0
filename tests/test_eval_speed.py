"""The evaluation's speed-ups must not change what it measures: the clip cache (never a stale hit), --workers
(the same output as one worker), the identity subsample (order-independent), and no plotting library loaded when no
report is drawn. Timings are in docs/benchmarks.md; no test here measures time."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media.images import list_images
from metrics import analysis, clip_cache
from metrics.analysis import ClipAnalysis, describe_frames, shared_tools
from metrics.evaluate import evaluate, main

ROOT = Path(__file__).resolve().parents[1]
MEGC = ROOT.parent / "shared" / "data" / "megc2021"
CLIP = "casme2_Positive_asianFemale"
FRAMES = 6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Two results (other frames of the clip, and them reversed), its source clip and template, in another
    system's layout (paired by name)."""
    if not MEGC.is_dir():
        pytest.skip(f"real MEGC2021 data not found at {MEGC} (CI provides ../shared/data)")
    root = tmp_path_factory.mktemp("speed")
    paths = list(list_images(MEGC / CLIP / "imgs").values())
    spread = np.linspace(0, len(paths) - 2, FRAMES).round().astype(int)
    picked, others = [paths[i] for i in spread], [paths[i + 1] for i in spread]
    source = root / "sources" / CLIP / "imgs"
    source.mkdir(parents=True)
    for p in picked:
        shutil.copy(p, source / p.name)
    for name, order in ((f"{CLIP}_mine", others), (f"{CLIP}_reversed", others[::-1])):
        folder = root / "results" / name
        folder.mkdir(parents=True)
        for i, p in enumerate(order):
            shutil.copy(p, folder / f"{i:03d}.jpg")
    shutil.copytree(MEGC / CLIP / "imgs2", root / "sources" / CLIP / "imgs2")
    return root


def run(root: Path, out: str, **kw) -> dict:
    return evaluate(root / "results", root / "sources", root / "sources", root / out, 200, report=False, **kw)


def numbers(doc: dict) -> dict:
    return {"pairs": doc["pairs"], "summary": doc["summary"], "batch": doc["batch"]}


@pytest.fixture
def measured(monkeypatch) -> list[int]:
    """The lengths of the clips actually measured (not found in the store)."""
    calls: list[int] = []
    real = analysis._measure_clip

    def counting(frames, *args):
        calls.append(len(frames))
        return real(frames, *args)

    monkeypatch.setattr(analysis, "_measure_clip", counting)
    return calls


def test_cache_is_reused_and_a_changed_frame_is_measured_again(inputs, tmp_path, measured):
    root = tmp_path / "in"
    shutil.copytree(inputs, root)
    cache = tmp_path / "cache"
    first = run(root, "e1", cache_dir=cache)
    assert sorted(measured) == [1, FRAMES, FRAMES, FRAMES]  # template, two results, their one source clip once
    assert len(list(cache.rglob("*.npz"))) == 2  # the source clip and the template; results are not kept
    measured.clear()
    second = run(root, "e2", cache_dir=cache)
    assert sorted(measured) == [FRAMES, FRAMES]  # the results only: the source and template came from disk
    assert shared_tools().clips.hits["disk"] == 2
    assert numbers(second) == numbers(first)
    # one source frame changes (a few pixels): that clip is measured again, the template still comes from disk
    frame = sorted((root / "sources" / CLIP / "imgs").iterdir())[2]
    pixels = np.asarray(Image.open(frame).convert("RGB")).copy()
    pixels[:8, :8] = 255 - pixels[:8, :8]
    Image.fromarray(pixels).save(frame.with_suffix(".png"))
    frame.unlink()
    measured.clear()
    run(root, "e3", cache_dir=cache)
    assert sorted(measured) == [FRAMES, FRAMES, FRAMES]
    assert len(list(cache.rglob("*.npz"))) == 3


def test_an_unreadable_cache_entry_is_measured_again(inputs, tmp_path, measured):
    cache = tmp_path / "cache"
    first = run(inputs, "e1", cache_dir=cache)
    for entry in cache.rglob("*.npz"):
        entry.write_bytes(b"not a zip file")
    measured.clear()
    again = run(inputs, "e2", cache_dir=cache)
    assert sorted(measured) == [1, FRAMES, FRAMES, FRAMES]
    assert numbers(again) == numbers(first)


def test_the_key_follows_pixels_parameters_and_code_version(monkeypatch):
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    key = clip_cache.clip_key(frames, flow="farneback")
    changed = frames.copy()
    changed[1, 4, 4, 0] = 1
    assert clip_cache.clip_key(changed, flow="farneback") != key
    assert clip_cache.clip_key(frames, flow="tvl1") != key
    assert clip_cache.clip_key(frames[:2], flow="farneback") != key
    monkeypatch.setattr(clip_cache, "_VERSION", "another measuring code")
    assert clip_cache.clip_key(frames, flow="farneback") != key


def test_measuring_version_covers_the_measuring_code():
    files = {p.relative_to(ROOT).as_posix() for p in clip_cache._measuring_files()}
    assert {"metrics/analysis.py", "metrics/motion.py", "metrics/identity.py", "openface/au_estimator.py",
            "openface/landmarks.py", "openface/au_calibration.json", "catalog/au_schema.py"} <= files


def test_a_stored_clip_comes_back_identical(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    masks = {"brows": rng.random((16, 16)) > 0.5, "mouth": rng.random((16, 16)) > 0.5}  # order matters
    profiles = {"flow": {"brows": rng.random(4), "mouth": rng.random(4)}, "strain": {}, "onset": None,
                "magnitude": rng.random((4, 16, 16)).astype(np.float32)}
    clip = ClipAnalysis(rgb, analysis.quality.grey(rgb), np.array([True, False, True, True]), rng.random((4, 17)),
                        rng.random((4, 128)), masks, profiles, rng.random(4))
    store = clip_cache.ClipStore(tmp_path)
    store.save("ab" * 20, clip)
    back = clip_cache.ClipStore(tmp_path).get("ab" * 20, ClipAnalysis, analysis.quality.grey)
    assert list(back.masks) == ["brows", "mouth"] and back.profiles["onset"] is None
    assert back.profiles["strain"] == {} and back.inception is None
    for name in ("rgb", "grey", "valid", "aus", "descriptors", "change"):
        np.testing.assert_array_equal(getattr(back, name), getattr(clip, name))
        assert getattr(back, name).dtype == getattr(clip, name).dtype
    for region in masks:
        np.testing.assert_array_equal(back.masks[region], masks[region])
        np.testing.assert_array_equal(back.profiles["flow"][region], profiles["flow"][region])
    np.testing.assert_array_equal(back.profiles["magnitude"], profiles["magnitude"])


def test_workers_give_the_output_of_one_worker(inputs, tmp_path):
    one = run(inputs, "w1", workers=1)
    two = run(inputs, "w2", workers=2)
    assert numbers(two) == numbers(one)


def test_identity_subsample_is_every_kth_face_frame():
    valid = np.array([False, True, True, True, False, True, True, True, True, True])
    assert np.flatnonzero(describe_frames(valid, 3)).tolist() == [1, 5, 8]  # face frames 0, 3, 6 of 8
    assert describe_frames(np.array([True]), 6).tolist() == [True]  # a template is always described
    assert describe_frames(valid, 1).tolist() == valid.tolist()
    assert not describe_frames(np.zeros(4, bool), 6).any()


def test_identity_every_1_describes_every_face_frame(inputs, tmp_path):
    doc = run(inputs, "all", identity_every=1)
    per_frame = doc["pairs"][0]["details"]["identity_distance_per_frame"]
    assert len(per_frame) == FRAMES and all(d is not None for d in per_frame)
    assert doc["inputs"]["identity_every"] == 1
    sub = run(inputs, "sub", identity_every=4)["pairs"][0]["details"]["identity_distance_per_frame"]
    assert [d is not None for d in sub] == [True, False, False, False, True, False]
    assert sub[0] == per_frame[0] and sub[4] == per_frame[4]  # the described frames get the same values


def test_no_plotting_library_without_a_report(inputs, tmp_path):
    code = ("import sys; from metrics.evaluate import main; "
            f"main(['--results', {str(inputs / 'results')!r}, '--sources', {str(inputs / 'sources')!r}, "
            f"'--templates', {str(inputs / 'sources')!r}, '--out', {str(tmp_path / 'e')!r}, '--no_report', "
            "'--no_cache', '--workers', '1']); "
            "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'torch'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["batch"]["failed"] == 0


def test_bad_worker_count_stops_while_parsing(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--results", str(tmp_path), "--workers", "0"])
    assert stopped.value.code == 2
    assert "--workers: 0: must be between 1 and" in capsys.readouterr().err


def test_cache_dir_and_no_cache_together_exit_2(tmp_path, capsys):
    assert main(["--results", str(tmp_path), "--cache_dir", str(tmp_path / "c"), "--no_cache"]) == 2
    assert "--cache_dir and --no_cache contradict each other" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
