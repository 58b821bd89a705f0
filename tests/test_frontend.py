"""The built-in face front end on real faces, the prepare command, and --pre_treatment in test mode."""
import csv
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.au_schema import OPENFACE_AUS
from helpers import ROOT, SHARED_DATA, TINY_MODEL, make_tiny_dataset
from main import main
from media.images import list_images, load_rgb
from openface.align import align_face, paste_back
from openface.au_estimator import AU_SOURCES, Calibration
from openface.frontend import FaceFrontEnd
from openface.prepare import main as prepare_main

LONDON = SHARED_DATA / "london"
MEGC = SHARED_DATA / "megc2021"


def need(folder: Path):
    if not folder.is_dir():
        pytest.skip(f"real data not found at {folder} (CI provides ../shared/data)")


@pytest.fixture(scope="module")
def front_end():
    with FaceFrontEnd() as fe:
        yield fe


@pytest.fixture(scope="module")
def london_prepared(tmp_path_factory):
    need(LONDON)
    out = tmp_path_factory.mktemp("london")
    assert prepare_main([str(LONDON), str(out / "prep"), "--workers", "2", "--no_progress"]) == 0
    return out / "prep"


def records(prepared: Path) -> dict:
    return {r["name"]: r for r in map(json.loads, (prepared / "faces.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_every_london_photo_is_detected_and_aligned(london_prepared):
    recs = records(london_prepared)
    assert len(recs) == 160 and all(r["status"] == "ok" for r in recs.values()), \
        [r for r in recs.values() if r["status"] != "ok"]
    assert len(list((london_prepared / "imgs").glob("*.png"))) == 160
    assert Image.open(london_prepared / "contact_sheet.png").size == (8 * 96, 8 * 96)
    assert Image.open(london_prepared / "imgs" / "neutral__003_03.png").size == (128, 128)


def test_smiles_raise_au12_and_au6_for_at_least_90_percent_of_people(london_prepared):
    recs = records(london_prepared)
    people = sorted(n.split("__")[1][:3] for n in recs if n.startswith("neutral__"))
    au6, au12 = OPENFACE_AUS.index("AU06"), OPENFACE_AUS.index("AU12")
    wins6 = wins12 = 0
    for pid in people:
        neutral, smiling = recs[f"neutral__{pid}_03"]["intensity"], recs[f"smiling__{pid}_08"]["intensity"]
        wins6 += smiling[au6] > neutral[au6]
        wins12 += smiling[au12] > neutral[au12]
    print(f"London, {len(people)} people: AU06 higher when smiling for {wins6}, AU12 for {wins12}")
    assert len(people) == 80
    assert wins6 >= 0.9 * len(people) and wins12 >= 0.9 * len(people)


@pytest.mark.slow
def test_every_megc2021_frame_and_template_is_detected(front_end):
    need(MEGC)
    paths = [p for folder in sorted(MEGC.iterdir()) for sub in ("imgs", "imgs2")
             for p in list_images(folder / sub).values()]
    problems = {}
    for path in paths:
        m = front_end.measure(load_rgb(path), str(path))  # raises NoFaceError naming the file
        if m.problems:
            problems[path.name] = m.problems
    assert len(paths) > 900 and not problems, problems


def test_paste_back_of_an_unchanged_crop_restores_the_photo(front_end):
    need(LONDON)
    rgb = load_rgb(LONDON / "neutral" / "003_03.jpg")
    face = front_end.landmarker.detect(rgb)[0]
    crop = align_face(rgb, face.landmarks, 128)
    big = np.asarray(Image.fromarray(crop.image).resize((256, 256), Image.Resampling.BICUBIC))
    back = paste_back(rgb, big, crop.matrix, aligned_size=128)
    x0, y0, x1, y1 = (int(v) for v in face.box)
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
    diff = np.abs(back[inner].astype(int) - rgb[inner].astype(int)).mean()
    assert diff < 12, diff  # only resampling blur inside the face (128 px crop of a 512 px photo)
    assert np.array_equal(back[:5, :5], rgb[:5, :5])  # far outside the mask nothing changes


def test_calibration_covers_every_au():
    cal = Calibration.load()
    assert cal.gain.shape == (17,) and np.all(cal.gain > 0) and set(AU_SOURCES) == set(OPENFACE_AUS)


@pytest.mark.slow
def test_prepare_handles_awkward_inputs_and_resumes(tmp_path):
    need(LONDON)
    src = tmp_path / "in put"
    src.mkdir()
    photo = Image.open(LONDON / "smiling" / "003_08.jpg")
    photo.save(src / "spaced name é.jpg")
    photo.convert("L").save(src / "grey.png")
    photo.convert("CMYK").save(src / "cmyk.jpg")
    Image.fromarray((np.asarray(photo.convert("L"), dtype=np.uint16) * 257)).save(src / "sixteen.png")
    rotated = photo.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CW to display": the stored pixels are sideways
    rotated.save(src / "exif.jpg", exif=exif)
    Image.new("RGB", (200, 200), "gray").save(src / "blank.jpg")
    (src / "broken.jpg").write_bytes((src / "grey.png").read_bytes()[:200])
    (src / "broken video.mp4").write_bytes(b"not a video at all")
    from media.frames import write_mp4

    frames = np.stack([np.asarray(photo.convert("RGB").resize((256, 256)))] * 3)
    write_mp4(frames, src / "clip.mp4", fps=25)
    out = tmp_path / "prepared"
    assert prepare_main([str(src), str(out), "--no_progress", "--aus_schema", "n2me18"]) == 0
    recs = records(out)
    ok = {n for n, r in recs.items() if r["status"] == "ok"}
    assert {"spaced_name_é", "grey", "cmyk", "sixteen", "exif", "clip__f00001", "clip__f00003"} <= ok
    rejected = {row["name"]: row["reason"] for row in csv.DictReader(open(out / "rejected.csv"))}
    assert rejected["blank"] == "no face found"
    assert "broken.jpg" in rejected["broken"] and "broken video.mp4: cannot read video" in rejected["broken_video"]
    header = (out / "aus.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["AU27*", "AU45"]  # N2ME's 18 values
    yaw = abs(recs["exif"]["yaw_pitch_roll"][2])
    assert yaw < 20  # EXIF orientation applied: the face is upright, not rolled by 90 degrees
    before = (out / "faces.jsonl").read_text()
    assert prepare_main([str(src), str(out), "--no_progress"]) == 0  # resume: nothing redone
    assert (out / "faces.jsonl").read_text() == before
    (src / "broken.png").write_bytes(b"")  # same output name as broken.jpg
    assert prepare_main([str(src), str(out), "--no_progress"]) == 2


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    data = make_tiny_dataset(tmp / "data", n=6)
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp / "ck"), "--name", "g", *TINY_MODEL,
                 "--batch_size", "2", "--max_steps", "1"]) == 0
    return tmp / "ck" / "g" / "latest.pth"


def images_only_folder(tmp_path: Path) -> Path:
    root = tmp_path / "only images"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs2").mkdir()
    clip = MEGC / "casme2_Positive_westMale" / "imgs"
    for name in ("crop_img121", "crop_img122", "crop_img123", "crop_img124"):
        shutil.copy(clip / f"{name}.jpg", root / "imgs")
    shutil.copy(LONDON / "neutral" / "003_03.jpg", root / "imgs2" / "template.jpg")
    return root


def test_pre_treatment_builtin_on_a_folder_of_images_only(tiny_ckpt, tmp_path):
    need(MEGC)
    need(LONDON)
    root = images_only_folder(tmp_path)
    assert main(["--mode", "test", "--ckpt", str(tiny_ckpt), "--data_root", str(root), "--pre_treatment",
                 "--au_backend", "builtin", "--re_code", "--apex_frame", "--gpu_ids", "-1", "--no_progress",
                 "--results_dir", str(tmp_path / "res"), "--no_video"]) == 0
    out = next((tmp_path / "res").iterdir())
    run = json.loads((out / "run.json").read_text())
    assert run["au_source"] == "built-in front end" and run["frames"] == 4
    assert sorted(os.listdir(root)) == ["imgs", "imgs2"]  # the user's folder is left as it was


@pytest.mark.slow
def test_pre_treatment_with_a_real_openface_binary_stand_in(tiny_ckpt, tmp_path, monkeypatch):
    need(MEGC)
    need(LONDON)
    fixture = ROOT / "tests" / "fixtures" / "fake_openface.py"
    folder = tmp_path / "OpenFace" / "bin"
    folder.mkdir(parents=True)
    body = fixture.read_text().split("\n", 1)[1]
    for tool in ("FaceLandmarkImg", "FeatureExtraction"):
        exe = folder / tool
        exe.write_text(f"#!{sys.executable}\n{body}")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("OPENFACE_BIN", str(folder))
    root = images_only_folder(tmp_path)
    assert main(["--mode", "test", "--ckpt", str(tiny_ckpt), "--data_root", str(root), "--pre_treatment",
                 "--au_backend", "openface", "--re_code", "--gpu_ids", "-1", "--no_progress",
                 "--results_dir", str(tmp_path / "res"), "--no_video"]) == 0
    run = json.loads((next((tmp_path / "res").iterdir()) / "run.json").read_text())
    assert run["au_source"].endswith("csvs") and run["frames"] == 4


def aus_names(out: Path) -> set[str]:
    return {line.split(",")[0] for line in (out / "aus.csv").read_text().splitlines()[1:]}


@pytest.mark.slow
def test_prepare_resume_rechecks_inputs_and_reads_a_clip_whole_or_not_at_all(tmp_path, capsys):
    """Issue 23 items 1, 8, 9, 14: a replaced input is measured again and a deleted one leaves the tables; a clip
    that decodes only in part keeps none of its frames; GIFs and symlinked folders are inputs; each record is
    written as soon as it is measured; a torn last record is dropped on resume."""
    need(LONDON)
    from media.frames import write_gif

    src = tmp_path / "in"
    (src / "people").mkdir(parents=True)
    photo = Image.open(LONDON / "smiling" / "003_08.jpg").convert("RGB")
    photo.save(src / "people" / "a.jpg")
    photo.save(src / "people" / "b.jpg")
    (src / "people" / "late.jpg").write_bytes(b"half-written")
    face = np.asarray(photo.resize((400, 400)))
    write_gif(np.stack([face] * 3), src / "people" / "whole.gif", fps=25)
    write_gif(np.stack([face] * 3), src / "people" / "cut.gif", fps=25)
    (src / "people" / "cut.gif").write_bytes((src / "people" / "cut.gif").read_bytes()[:-1])  # no trailer
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    photo.save(elsewhere / "linked.jpg")
    (src / "link").symlink_to(elsewhere, target_is_directory=True)
    out = tmp_path / "out"
    assert prepare_main([str(src), str(out), "--no_progress"]) == 0
    recs = records(out)
    assert {"people__whole__f00003", "link__linked"} <= aus_names(out)  # a GIF and a symlinked folder are read
    # the cut GIF: its frames were measured and recorded one by one, then it failed: rejected whole
    assert recs["people__cut__f00003"]["status"] == "ok" and recs["people__cut"]["status"] == "rejected"
    assert not any(n.startswith("people__cut") for n in aus_names(out))
    rejected = {row["name"] for row in csv.DictReader(open(out / "rejected.csv"))}
    assert rejected == {"people__cut", "people__late"}

    photo.save(src / "people" / "late.jpg")  # the half-written file, replaced as the message said
    (src / "people" / "b.jpg").unlink()
    with open(out / "faces.jsonl", "a") as fh:
        fh.write('{"name": "people__x", "sta')  # a run killed while writing its last record
    assert prepare_main([str(src), str(out), "--no_progress"]) == 0
    err = capsys.readouterr().err
    assert "cut short" in err and "2 earlier record(s) dropped" in err  # b (gone), late (replaced)
    assert "people__late" in aus_names(out) and "people__b" not in aus_names(out)
    ids = (out / "train_ids.txt").read_text().split() + (out / "test_ids.txt").read_text().split()
    assert "people__b" not in ids and "people__late" in ids
    assert {row["name"] for row in csv.DictReader(open(out / "rejected.csv"))} == {"people__cut"}
    assert not (out / "imgs" / "people__b.png").exists() and not list(out.glob(".*tmp*"))

    lines = (out / "faces.jsonl").read_text().splitlines()
    (out / "faces.jsonl").write_text("\n".join([lines[0][:-5], *lines[1:]]) + "\n")  # damage in the middle
    assert prepare_main([str(src), str(out), "--no_progress"]) == 2
    assert f"{out / 'faces.jsonl'}: line 1 is not a record" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--clips", "--fps", "0"], "--fps"), (["--clips", "--fps", "-5"], "--fps"),
    (["--clips", "--fps", "1e-9"], "--fps"),
    (["--clips", "--fps", "inf"], "--fps"), (["--clips", "--fps", "nan"], "--fps"),
    (["--fps", "200"], "without --clips")])
def test_prepare_refuses_a_frame_rate_it_would_not_use(tmp_path, capsys, argv, says):
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit) as exit_:
        prepare_main([str(tmp_path / "in"), str(tmp_path / "out"), *argv])
    assert exit_.value.code == 2 and says in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_prepare_out_that_is_a_file_or_in_use_is_one_line(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "x.png")
    (tmp_path / "file").write_text("not a folder")
    assert prepare_main([str(tmp_path / "in"), str(tmp_path / "file"), "--no_progress"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: OUT {tmp_path / 'file'} is a file: give a folder (created if "
                                               f"missing)")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    assert prepare_main([str(tmp_path / "in"), str(busy), "--no_progress"]) == 2
    assert f"{busy} is being written by another run (pid {os.getpid()} on host" in capsys.readouterr().err


def test_prepare_on_a_full_disk_leaves_no_partial_crop(tmp_path, monkeypatch):
    """Issue 23 item 12: the crop is written under a temporary name and renamed, so a full disk leaves no partial
    PNG (main() turns the OSError into one line, exit 2)."""
    import errno
    import threading

    from openface import prepare

    (tmp_path / "imgs").mkdir()
    monkeypatch.setattr(prepare, "_OUT", tmp_path)
    monkeypatch.setattr(prepare, "_LOG_LOCK", threading.Lock())
    (tmp_path / "in.jpg").write_bytes(b"x")

    def full(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    item = prepare.Item("face", tmp_path / "in.jpg")
    with pytest.raises(OSError, match="No space left"):
        prepare._keep({"name": "face", "status": "ok"}, np.zeros((4, 4, 3), np.uint8), item)
    assert list((tmp_path / "imgs").iterdir()) == [] and not (tmp_path / "faces.jsonl").exists()


def test_prepare_rejects_a_frame_of_another_size_in_a_clip():
    """Issue 23 item 4 in openface.prepare --clips: the odd frame is rejected with both sizes named, not measured
    as a large movement; a photo (no clip) and frames of a cut video follow their own rules."""
    from openface.prepare import usable

    def frame(name, size, clip="c", status="ok"):
        return {"name": name, "status": status, "clip": clip, "size": size, "reason": ""}

    records = [frame("c__img10", [64, 48]), frame("c__img2", [80, 60]), frame("c__img1", [64, 48]),
               frame("photo", [10, 10], clip=None), {"name": "v", "status": "rejected", "video": True},
               frame("v__f00001", [64, 48], clip="v")]
    out = {r["name"]: r for r in usable(records)}
    assert out["c__img2"]["status"] == "rejected"
    assert out["c__img2"]["reason"] == "60x80 px, but the clip's first frame c__img1 is 48x64: resize or remove it"
    assert out["c__img10"]["status"] == out["c__img1"]["status"] == out["photo"]["status"] == "ok"
    assert "v__f00001" not in out and usable(list(out.values())) == list(out.values())
