"""N2ME's two-stage pipeline end to end with small random checkpoints, on real MEGC2021 frames and London photos."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook
from PIL import Image

from data.annotations import build_me_summary, read_annotations
from data.me_curves import fill_gaps
from helpers import SHARED_DATA, TINY_MODEL, make_tiny_dataset
from main import main
from media.video import probe_video

MEGC, LONDON, SHEETS = SHARED_DATA / "megc2021", SHARED_DATA / "london", SHARED_DATA / "me_annotations"


def need(*folders):
    for folder in folders:
        if not folder.is_dir():
            pytest.skip(f"real data not found at {folder} (CI provides ../shared/data)")


def tiny_run(tmp, name, *extra):
    data = make_tiny_dataset(tmp / f"data_{name}", n=6, n_aus=18 if "--aus_nc" in extra else 17)
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp / "ck"), "--name", name, *TINY_MODEL,
                 "--batch_size", "2", "--max_steps", "2", "--train_gen_iter", "1", *extra]) == 0
    return tmp / "ck" / name


def clip_csv(frames_csv_dir, names, path, drop=()):
    """A FeatureExtraction-style clip CSV from per-frame FaceLandmarkImg CSVs; rows in ``drop`` lose their face."""
    lines = []
    for i, name in enumerate(names):
        header, row = (frames_csv_dir / f"{name}.csv").read_text().splitlines()[:2]
        if not lines:
            lines.append("frame, success, " + header)
        if i in drop:
            row = ", ".join(["0"] + ["" for _ in row.split(",")[1:]])
        lines.append(f"{i + 1}, {0 if i in drop else 1}, {row}")
    path.write_text("\n".join(lines) + "\n")


def test_fill_gaps_interpolates_and_reports_long_gaps():
    aus = np.array([[0.0], [9], [9], [3.0], [9], [9], [9], [9], [9], [9], [9], [4.0]])
    valid = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    filled, long_gaps = fill_gaps(aus, valid, max_silent_gap=5)
    np.testing.assert_allclose(filled[:4, 0], [0, 1, 2, 3])
    assert long_gaps == [(4, 7)] and filled[-1, 0] == 4


# "on": compiled generators for both stages (on CPU the fast path is compilation in fp32)
@pytest.mark.parametrize("fast_path", ["off", "on"])
@pytest.mark.slow
def test_two_stage_pipeline_on_real_frames(tmp_path, fast_path):
    need(MEGC, LONDON)
    neutral = tiny_run(tmp_path, "neutral18", "--aus_nc", "18")
    me = tiny_run(tmp_path, "me_unet", "--model", "n2me_unet")
    test_dir = tmp_path / "test"
    (test_dir / "inputs").mkdir(parents=True)
    shutil.copy(LONDON / "neutral" / "003_03.jpg", test_dir / "inputs" / "person_a.jpg")
    shutil.copy(LONDON / "smiling" / "004_08.jpg", test_dir / "inputs" / "person_b.jpg")
    Image.new("RGB", (120, 120), "gray").save(test_dir / "inputs" / "not_a_face.png")
    casme, samm = tmp_path / "casme_aus", tmp_path / "samm_aus"
    casme.mkdir()
    frames = sorted((MEGC / "casme2_Positive_westMale" / "csvs").glob("*.csv"))
    names = [p.stem for p in frames][:6]
    clip_csv(MEGC / "casme2_Positive_westMale" / "csvs", names, casme / "sub19_EP01_01f.csv", drop={2})
    clip_csv(MEGC / "casme2_Surprise_westMale" / "csvs",
             sorted(p.stem for p in (MEGC / "casme2_Surprise_westMale" / "csvs").glob("*.csv"))[:5],
             casme / "sub17_EP01_13.csv")
    (samm / "022_3_3").mkdir(parents=True)  # SAMM as frames: measured by the built-in front end
    for p in sorted((MEGC / "SAMM_Positive_westMale" / "imgs").iterdir())[:4]:
        shutil.copy(p, samm / "022_3_3")
    summary = {"happiness": ["c_sub19_EP01_01f", "s_022_3_3"], "surprise": ["c_sub17_EP01_13", "s_007_7_1"],
               "anger": [], "disgust": [], "fear": [], "sadness": []}
    (test_dir / "me_summary.json").write_text(json.dumps(summary))
    # --motion none: N2ME's own generation (tiny untrained models give neutral faces with no landmarks to move)
    assert main(["--mode", "test", "--motion", "none", "--test_mode", "all", "--test_dir", str(test_dir),
                 "--input_dir", "inputs", "--neutral_ckpt", str(neutral), "--me_ckpt", str(me), "--keep_size",
                 "--gpu_ids", "-1",
                 "--casme_ii_aus_dir", str(casme), "--samm_aus_dir", str(samm), "--me_emotions",
                 "happiness,surprise", "--me_samples", "5", "--no_progress", "--fast_path", fast_path]) == 0
    neutral_dir = test_dir / "neutral" / "neutral18"
    assert sorted(p.name for p in neutral_dir.iterdir()) == ["aus.csv", "person_a.jpg", "person_b.jpg"]
    assert Image.open(neutral_dir / "person_a.jpg").size == (512, 512)  # --keep_size: the whole photo
    expected = {("happiness", "c_sub19_EP01_01f"): 6, ("happiness", "s_022_3_3"): 4, ("surprise", "c_sub17_EP01_13"): 5}
    for (emotion, clip), n_frames in expected.items():
        for person in ("person_a", "person_b"):
            out = test_dir / emotion / "me_unet" / clip / person
            assert sorted(p.name for p in out.glob("*.jpg")) == [f"{i:03d}.jpg" for i in range(n_frames)]
            meta = probe_video(out / "target.mp4")
            assert meta["frames"] == n_frames and meta["fps"] == 200
            assert (out / "compare.mp4").exists() and (out / "au_curves.png").exists()
    assert not (test_dir / "surprise" / "me_unet" / "s_007_7_1").exists()
    report = json.loads((test_dir / "n2me_report.json").read_text())
    text = "\n".join(report["problems"])
    assert "not_a_face.png: no face found" in text and "s_007_7_1 skipped" in text
    assert "c_sub19_EP01_01f: no face in 1 frame(s), interpolated" in text
    assert "happiness: 5 clips asked, 2 exist" in text


@pytest.mark.slow
def test_unknown_emotion_is_refused(tmp_path, capsys):
    need(LONDON)
    neutral = tiny_run(tmp_path, "neutral18", "--aus_nc", "18")
    test_dir = tmp_path / "test"
    (test_dir / "in").mkdir(parents=True)
    shutil.copy(LONDON / "neutral" / "003_03.jpg", test_dir / "in")
    (test_dir / "me_summary.json").write_text(json.dumps({"happiness": []}))
    assert main(["--mode", "test", "--test_mode", "me", "--test_dir", str(test_dir), "--input_dir", "in",
                 "--neutral_ckpt", str(neutral), "--me_ckpt", str(neutral), "--me_emotions", "joy",
                 "--gpu_ids", "-1"]) == 2
    assert "unknown emotion" in capsys.readouterr().err


def _sheet_emotion_counts(path, header_row_finder):
    wb = load_workbook(path, read_only=True)
    rows = [r for ws in wb.worksheets for r in ws.iter_rows(values_only=True)]
    header = header_row_finder(rows)
    col = [str(c).strip().lower() if c else "" for c in rows[header]].index("estimated emotion")
    counts = {}
    for row in rows[header + 1:]:
        if row and row[col]:
            label = str(row[col]).strip().lower()
            counts[label] = counts.get(label, 0) + 1
    return counts


def test_me_summary_counts_match_the_real_sheets(tmp_path):
    need(SHEETS)
    casme, samm = SHEETS / "CASME2-coding-20190701.xlsx", SHEETS / "SAMM_Micro_FACS_Codes_v2.xlsx"
    summary = build_me_summary(read_annotations(casme) + read_annotations(samm))

    def first_with_filename(rows):
        return next(i for i, r in enumerate(rows) if r and any(str(c).strip() == "Filename" for c in r if c))

    c_counts = _sheet_emotion_counts(casme, first_with_filename)
    s_counts = _sheet_emotion_counts(samm, first_with_filename)
    for emotion in ("happiness", "disgust", "surprise", "fear", "sadness", "anger"):
        assert sum(i.startswith("c_") for i in summary[emotion]) == c_counts.get(emotion, 0), emotion
        assert sum(i.startswith("s_") for i in summary[emotion]) == s_counts.get(emotion, 0), emotion
    assert all(i.startswith(("c_sub", "s_")) for ids in summary.values() for i in ids)


@pytest.mark.numeric
def test_stage_two_moves_the_neutral_face_through_the_motion_primitives():
    """N2ME's second stage under motion transfer (the default): the clip's ME curve moves the neutral face."""
    from types import SimpleNamespace

    import matplotlib.cbook as cbook

    from catalog.au_schema import OPENFACE_AUS
    from data.sequences import Template
    from media.images import load_rgb
    from solvers.motion_path import MotionSettings
    from solvers.n2me_pipeline import N2MEPipeline, NeutralFace

    crop = load_rgb(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), 128)
    pipeline = N2MEPipeline.__new__(N2MEPipeline)  # only the settings are read by moved_frames
    pipeline.s = SimpleNamespace(motion=MotionSettings(motion="auto", texture="none"))
    aus = np.zeros((5, len(OPENFACE_AUS)))
    aus[:, OPENFACE_AUS.index("AU12")] = [0, 1, 2, 3, 2]
    face = NeutralFace("hopper", crop, np.zeros(len(OPENFACE_AUS)))
    frames = pipeline.moved_frames(None, Template(Path("hopper"), face.aus, crop), face, SimpleNamespace(aus=aus))
    assert frames.shape == (5, 128, 128, 3) and np.array_equal(frames[0], crop)  # no AU change: the face itself
    change = np.abs(frames[3].astype(int) - crop.astype(int)).sum(-1)
    # the squashed 128 px photo has its mouth at rows 50-70, columns 50-85 (MediaPipe: corners at y 59), the cap
    # in the top rows: the mouth moves, the cap does not
    assert change[50:70, 50:85].mean() > 3 * max(change[:25].mean(), 0.1)
