"""End-to-end evaluation on real MEGC2021 clips: sanity checks that can fail, bad input, outputs, the report.

Real clips stand in for generated results (few frames each, to stay fast): the source clip scored against itself
must get the ideal value of every metric; a time-shuffled copy and another person's clip must score clearly worse on
the metrics meant to catch them. Folders are built in the test-mode layout (``run.json`` + ``frames/`` +
``aus_driven.csv``) and as another system's outputs (videos and frame folders paired by name).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.au_schema import OPENFACE_AUS
from media.images import list_images, load_rgb
from metrics.analysis import analyse, shared_tools
from metrics.evaluate import evaluate, main

MEGC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2021"
SOURCE_CLIP = "casme2_Positive_asianFemale"  # a clear smile: AU and flow profiles rise to the apex and fall
OTHER_PERSON = "SAMM_Negative_westMale"
FRAMES = 10
SHUFFLE = [6, 2, 9, 0, 7, 4, 1, 8, 3, 5]  # fixed, so the test cannot pass or fail by chance
NO_FACE_AT = 3


def pick_frames(folder: Path, n: int) -> list[Path]:
    """n frames evenly spread over the clip: onset, apex and offset all stay in."""
    paths = list(list_images(folder).values())
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


def write_run(folder: Path, frames: list[np.ndarray], source: Path | None, template: Path, driven: np.ndarray,
              apex: int = 7) -> None:
    """A result folder as ``main.py --mode test`` writes it (the parts the evaluation reads)."""
    (folder / "frames").mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / "frames" / f"{i:03d}.png")
    rows = ["frame," + ",".join(OPENFACE_AUS)] + [f"{i}," + ",".join(f"{v:.6f}" for v in r) for i, r in
                                                  enumerate(driven)]
    (folder / "aus_driven.csv").write_text("\n".join(rows) + "\n")
    run = {"clip": SOURCE_CLIP, "au_source": "test", "template": str(template),
           "source_frames": str(source) if source else None, "fps": 200, "apex": apex, "frames": len(frames),
           "frames_per_s": 10.0, "device": "cpu"}
    (folder / "run.json").write_text(json.dumps(run))


@pytest.fixture(scope="module")
def megc() -> Path:
    if not MEGC.is_dir():
        pytest.skip(f"real MEGC2021 data not found at {MEGC} (CI provides ../shared/data)")
    return MEGC


@pytest.fixture(scope="module")
def batch(megc, tmp_path_factory):
    """One batch folder with a result of every kind, evaluated once (the models load once)."""
    root = tmp_path_factory.mktemp("eval")
    source_dir = root / "sources" / SOURCE_CLIP
    source_dir.mkdir(parents=True)
    for p in pick_frames(megc / SOURCE_CLIP / "imgs", FRAMES):
        shutil.copy(p, source_dir / p.name)
    frames = [load_rgb(p) for p in list_images(source_dir).values()]
    template = root / "templates" / "onset.png"  # the source's own first frame: the same person
    template.parent.mkdir()
    Image.fromarray(frames[0]).save(template)
    # The "driving" AUs are what the front end measures on the source (sequence mode at the run's 200 fps), so a
    # perfect result has AU MAE 0.
    driven = analyse(np.stack(frames), shared_tools(), None, describe=False, fps=200).aus
    other = [load_rgb(p) for p in pick_frames(megc / OTHER_PERSON / "imgs", FRAMES)]
    no_face = list(frames)
    no_face[NO_FACE_AT] = np.full_like(frames[0], 128)  # a flat grey frame: no face to find
    runs = root / "results"
    write_run(runs / "self", frames, source_dir, template, driven)
    write_run(runs / "shuffled", [frames[i] for i in SHUFFLE], source_dir, template, driven)
    write_run(runs / "swapped", other, source_dir, template, driven)
    write_run(runs / "still", [frames[0]] * FRAMES, source_dir, template, driven)
    write_run(runs / "no_source", frames, None, template, driven)
    write_run(runs / "no_template", frames, source_dir, root / "gone.png", driven)
    write_run(runs / "short", frames[::2], source_dir, template, driven[::2])
    write_run(runs / "no_face", no_face, source_dir, template, driven)
    # FACS codes for the clip: the AUs that visibly rise in the real clip, plus one the estimator cannot measure
    rises = driven.max(axis=0) - driven[0]
    rising = [int(n[2:]) for j, n in enumerate(OPENFACE_AUS) if n != "AU45" and rises[j] >= 0.25]
    codes = root / "codes.csv"
    codes.write_text(f"name,aus\n{SOURCE_CLIP},{'+'.join(map(str, rising + [24]))}\n")
    # every frame described (not the default sixth): these 10-frame clips check exact identity and FD values, e.g.
    # that a time-shuffled copy keeps the FD of the unshuffled one
    doc = evaluate(runs, out=root / "eval", annotations=[codes], report=False, identity_every=1)
    pairs = {p["pair"]: p for p in doc["pairs"]}
    return {"doc": doc, "pairs": pairs, "root": root, "rising": rising}


def metric(batch, pair: str, name: str):
    return batch["pairs"][pair]["metrics"][name]


# ---------------------------------------------------------------------------------------- sanity

def test_source_against_itself_is_ideal(batch):
    m = batch["pairs"]["self"]["metrics"]
    assert batch["rising"], "the test clip should have AUs that rise"
    assert m["au_r"] >= 0.99999
    assert m["au_mae"] == 0.0
    assert m["apex_error_frames"] == 0.0 and m["apex_error_ms"] == 0.0
    assert m["facs_recall"] == 1.0 and m["facs_recall_source"] == 1.0
    assert m["flow_r"] >= 0.99999 and m["strain_r"] >= 0.99999
    assert m["flow_amplitude_error"] == 0.0
    assert m["flicker"] == 0.0
    assert m["fd_dlib128"] == pytest.approx(0.0, abs=1e-6)
    # the template is the clip's first frame: the same person on every frame
    assert m["identity_same_rate"] == 1.0 and m["identity_distance"] < 0.3
    assert m["ssim_static"] > 0.8
    assert m["frames_per_s"] == 10.0 and m["device"] == "cpu"
    facs = batch["pairs"]["self"]["details"]["facs"]
    assert facs["not_measurable"] == ["AU24"]


def test_still_template_is_ideal_on_template_metrics_and_frozen_motion_scores_zero(batch):
    m = batch["pairs"]["still"]["metrics"]
    assert m["identity_distance"] == pytest.approx(0.0, abs=1e-9) and m["identity_same_rate"] == 1.0
    assert m["ssim_static"] == pytest.approx(1.0) and m["psnr_static"] == 100.0
    assert m["flicker"] == 0.0
    # ... but a result that does not move has no AU or motion fidelity
    assert m["au_r"] == 0.0 and m["flow_r"] == 0.0 and m["strain_r"] == 0.0
    assert m["flow_amplitude_error"] > 2.0


def test_time_shuffled_result_scores_clearly_worse(batch):
    self_, shuffled = batch["pairs"]["self"]["metrics"], batch["pairs"]["shuffled"]["metrics"]
    assert shuffled["au_r"] < self_["au_r"] - 0.5
    assert shuffled["flow_r"] < 0.5 and shuffled["strain_r"] < 0.5
    assert shuffled["apex_error_frames"] >= 2
    assert shuffled["flicker"] > 0.5  # jumps between distant frames are not explained by the source
    # the shuffle keeps the person and the set of frames: identity and FD must not move
    assert shuffled["identity_same_rate"] == 1.0
    assert shuffled["fd_dlib128"] == pytest.approx(self_["fd_dlib128"], abs=1e-6)


def test_identity_swapped_result_scores_clearly_worse(batch):
    self_, swapped = batch["pairs"]["self"]["metrics"], batch["pairs"]["swapped"]["metrics"]
    assert swapped["identity_distance"] > 0.6 > self_["identity_distance"]
    assert swapped["identity_same_rate"] <= 0.1
    assert swapped["fd_dlib128"] > 0.2
    assert swapped["ssim_static"] < self_["ssim_static"] - 0.2
    assert swapped["psnr_static"] < self_["psnr_static"] - 3


# ---------------------------------------------------------------------------------------- bad input

def test_missing_source_gives_null_never_zero(batch):
    pair = batch["pairs"]["no_source"]
    m = pair["metrics"]
    for name in ("au_r", "flow_r", "strain_r", "flow_amplitude_error", "fd_dlib128", "facs_recall_source"):
        assert m[name] is None, name
    assert pair["source"] is None and any("AU matrix" in n for n in pair["notes"])
    # what does not need the source is still there; the apex is checked against the run's own
    assert m["identity_distance"] is not None and m["au_mae"] == 0.0 and m["facs_recall"] is not None
    assert "run.json" in pair["details"]["apex"]["reference"]
    with open(batch["root"] / "eval" / "metrics.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["pair"] == "no_source")
    assert row["au_r"] == "" and row["fd_dlib128"] == ""  # empty cells, not 0


def test_missing_template_gives_null(batch):
    pair = batch["pairs"]["no_template"]
    for name in ("identity_distance", "identity_same_rate", "ssim_static", "psnr_static"):
        assert pair["metrics"][name] is None, name
    assert pair["metrics"]["au_r"] >= 0.99999
    assert any("template" in n for n in pair["notes"])


def test_different_lengths_are_aligned_by_time(batch):
    pair = batch["pairs"]["short"]
    assert pair["frames"] == FRAMES // 2 and pair["source_frames"] == FRAMES
    assert "lengths differ" in pair["aligned"] and pair["aligned"] in pair["notes"]
    m = pair["metrics"]
    assert m["au_r"] > 0.8 and m["flow_r"] > 0.8
    # one result frame spans 2.25 source frames here, and the apex of 5 frames is coarse: within a third of the clip
    assert m["apex_error_frames"] <= 3.0
    assert m["apex_error_ms"] == pytest.approx(m["apex_error_frames"] / 200 * 1000)


def test_frames_without_a_face_are_counted_and_excluded(batch):
    pair = batch["pairs"]["no_face"]
    assert pair["no_face_result"] == [NO_FACE_AT]
    assert any(f"no face in 1 of {FRAMES}" in n for n in pair["notes"])
    m = pair["metrics"]
    assert m["flow_r"] >= 0.99999  # the other frames still match exactly
    # AUs come from the sequence mode, which smooths over neighbouring frames: without the missing frame the
    # others' AUs move a little, but never far (a frame counted as zero instead of excluded would drop r far more)
    assert m["au_r"] >= 0.97
    assert np.isnan(np.array(pair["details"]["identity_distance_per_frame"], dtype=float)[NO_FACE_AT])


def test_outputs_and_summary(batch):
    out = batch["root"] / "eval"
    doc = json.loads((out / "metrics.json").read_text())
    assert len(doc["pairs"]) == 8 and doc["batch"]["failed"] == 0
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {"au_r", "identity_distance", "flicker", "frames_per_s"} <= set(rows[0])
    groups = {(r["dataset"], r["emotion"]): r for r in doc["summary"]}
    assert groups[("casme2", "positive")]["pairs"] == 8 and ("all", "all") in groups
    assert doc["metrics"]["au_r"]["direction"] == "higher" and doc["versions"]["dlib-bin"]


# ---------------------------------------------------------------------------------------- other systems

def write_mp4(frames: list[np.ndarray], path: Path, fps: float = 30) -> None:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         output_params=["-crf", "12"], macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


@pytest.fixture(scope="module")
def other_system(megc, tmp_path_factory):
    """Another system's outputs (a video and a frame folder named by pair) and sources in the ULME layout."""
    root = tmp_path_factory.mktemp("other")
    for clip in (SOURCE_CLIP, OTHER_PERSON):
        (root / "sources" / clip / "imgs").mkdir(parents=True)
        (root / "sources" / clip / "imgs2").mkdir()
        for p in pick_frames(megc / clip / "imgs", 6):
            shutil.copy(p, root / "sources" / clip / "imgs" / p.name)
        shutil.copy(next((megc / clip / "imgs2").iterdir()), root / "sources" / clip / "imgs2")
    results = root / "results"
    (results / "deep" / OTHER_PERSON / "frames").mkdir(parents=True)
    video_frames = [np.asarray(Image.fromarray(load_rgb(p)).resize((256, 256)))
                    for p in pick_frames(megc / SOURCE_CLIP / "imgs", 6)]
    write_mp4(video_frames, results / f"{SOURCE_CLIP}_mygan.mp4")
    for i, p in enumerate(pick_frames(megc / OTHER_PERSON / "imgs", 6)):
        shutil.copy(p, results / "deep" / OTHER_PERSON / "frames" / f"{i}.jpg")
    code = main(["--results", str(results), "--sources", str(root / "sources"), "--templates",
                 str(root / "sources"), "--out", str(root / "eval"), "--fps", "200"])
    doc = json.loads((root / "eval" / "metrics.json").read_text())
    return {"code": code, "doc": doc, "root": root}


def test_other_system_outputs_are_paired_by_name(other_system):
    assert other_system["code"] == 0
    pairs = {p["pair"]: p for p in other_system["doc"]["pairs"]}
    video = pairs[f"{SOURCE_CLIP}_mygan"]
    assert video["source"].endswith(f"{SOURCE_CLIP}/imgs") and "imgs2" in video["template"]
    assert video["frames"] == 6 and video["fps"] == 200
    # a 256 px H.264 copy of the real clip still matches it closely on the 128 px canonical crops
    assert video["metrics"]["au_r"] > 0.9 and video["metrics"]["flow_r"] > 0.9
    assert video["metrics"]["frames_per_s"] is None  # no run.json: efficiency unknown, not 0
    folder = pairs[OTHER_PERSON]
    assert folder["source"].endswith(f"{OTHER_PERSON}/imgs") and folder["metrics"]["au_r"] >= 0.99999
    assert folder["dataset"] == "samm" and folder["emotion"] == "negative"


def test_bad_results_folder_exits_with_2(tmp_path, capsys):
    assert main(["--results", str(tmp_path / "nothing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["--results", str(tmp_path / "empty")]) == 2
    assert "no result sequences" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- the report

def test_report_is_self_contained(other_system):
    page = (other_system["root"] / "eval" / "report.html").read_text()
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") >= 6  # stills + AU curves + profiles for each of 2 pairs
    assert "python -m metrics.evaluate --results" in page  # the exact command
    assert "dlib-bin" in page and "Summary per dataset and emotion" in page


@pytest.fixture(scope="module")  # module scope, listed first: skips before the evaluation fixture runs
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("MEGAN_REQUIRE_BROWSER"):  # set by .ci/run, which installs Debian's chromium
        pytest.fail("MEGAN_REQUIRE_BROWSER is set but neither chromium nor chromium-browser is on PATH")
    if found is None:
        pytest.skip("chromium not installed (apt-get install -y chromium); docs/evaluation.md has the screenshot "
                    "command")
    return found


@pytest.mark.browser
def test_report_renders_in_headless_chromium(chromium, other_system, tmp_path):
    shot = tmp_path / "shot.png"
    report = other_system["root"] / "eval" / "report.html"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--screenshot={shot}",
           "--window-size=1200,2000", report.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (2000, 1200)
    # plots and face images are drawn: many pixels are neither white nor grey
    colourful = (np.abs(pixels[..., 0] - pixels[..., 2]) > 40).mean()
    assert colourful > 0.01, f"only {colourful:.2%} coloured pixels: the plots did not render"
