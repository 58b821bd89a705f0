"""openface.runner against a stand-in for the OpenFace binaries (tests/fixtures/fake_openface.py).

The stand-in parses the real tools' arguments and writes OpenFace-format CSVs. Each fake image holds its own file
name as content, because the runner hands OpenFace ASCII links rather than the user's names.
"""
from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from catalog.au_schema import OPENFACE_17, OPENFACE_PRESENCE
from data.au_table import load_au_table, save_au_table_csv
from openface.openface_bin import ENV_VAR, OpenFaceError, find_openface_bin
from openface.openface_outputs import au_table_from_rows
from openface.runner import run_face_landmark_img, run_feature_extraction

FIXTURE = Path(__file__).parent / "fixtures" / "fake_openface.py"
_spec = importlib.util.spec_from_file_location("fake_openface", FIXTURE)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the stand-in is started through a POSIX shebang")


@pytest.fixture
def openface_dir(tmp_path, monkeypatch) -> Path:
    """A folder holding stand-in FaceLandmarkImg and FeatureExtraction executables; no other OpenFace around."""
    folder = tmp_path / "OpenFace" / "bin"
    folder.mkdir(parents=True)
    body = FIXTURE.read_text().split("\n", 1)[1]
    for tool in ("FaceLandmarkImg", "FeatureExtraction"):
        exe = folder / tool
        # This interpreter rather than "env python3": the test must not depend on what PATH holds.
        exe.write_text(f"#!{sys.executable}\n{body}")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("FAKE_OPENFACE_HEADER", raising=False)
    monkeypatch.delenv("FAKE_OPENFACE_NO_AUS", raising=False)
    monkeypatch.setenv("FAKE_OPENFACE_LOG", str(tmp_path / "calls.jsonl"))
    return folder


def calls(tmp_path: Path) -> list[dict]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def make_images(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / name
        path.write_bytes(name.encode("utf-8"))  # the stand-in reads its label from the content
        paths.append(path)
    return paths


# --- finding the binary ---------------------------------------------------------------------------------------


def test_explicit_folder_tool_or_sibling_tool(openface_dir):
    img_tool = openface_dir / "FaceLandmarkImg"
    assert find_openface_bin(str(openface_dir)) == img_tool.resolve()
    assert find_openface_bin(str(openface_dir.parent)) == img_tool.resolve()  # <install>/bin is searched too
    assert find_openface_bin(img_tool) == img_tool.resolve()
    # --openface_bin naming one tool finds the other one beside it.
    assert find_openface_bin(img_tool, "FeatureExtraction") == (openface_dir / "FeatureExtraction").resolve()


def test_env_var_pointing_at_a_folder(openface_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(openface_dir))
    assert find_openface_bin(None, "FeatureExtraction") == (openface_dir / "FeatureExtraction").resolve()


def test_found_on_path(openface_dir, monkeypatch):
    monkeypatch.setenv("PATH", str(openface_dir))
    assert find_openface_bin() == (openface_dir / "FaceLandmarkImg").resolve()


def test_missing_binary_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        find_openface_bin()
    message = str(err.value)
    for needle in ("FaceLandmarkImg", "--au_backend builtin", f"${ENV_VAR}", "--openface_bin", "PATH"):
        assert needle in message


def test_wrong_explicit_path_is_reported_not_skipped(openface_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(openface_dir))  # a working install on PATH must not hide the mistake
    wrong = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="--openface_bin=") as err:
        find_openface_bin(wrong)
    assert str(wrong) in str(err.value) and "--au_backend builtin" in str(err.value)


def test_not_executable_is_explained(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    tool = tmp_path / "FaceLandmarkImg"
    tool.write_text("not a program")
    with pytest.raises(FileNotFoundError, match="chmod"):
        find_openface_bin(tool)


# --- FaceLandmarkImg ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header_style", ["spaced", "compact"])  # OpenFace <= 2.1 writes ", ", 2.2 writes ","
def test_images_argv_and_values_by_column_name(openface_dir, tmp_path, monkeypatch, header_style):
    monkeypatch.setenv("FAKE_OPENFACE_HEADER", header_style)
    images = make_images(tmp_path / "photos", "neutral.jpg", "smile.png")
    out = tmp_path / "csvs"
    result = run_face_landmark_img(images, out, openface_bin=openface_dir)

    (call,) = calls(tmp_path)
    tool = str((openface_dir / "FaceLandmarkImg").resolve())
    assert call["argv"] == [tool, "-fdir", "in", "-out_dir", "out", "-aus"]
    assert call["labels"] == ["neutral.jpg", "smile.png"]  # input order kept
    assert sorted(result.rows) == ["neutral", "smile"] and result.missing == []
    np.testing.assert_allclose(result.rows["smile"].intensity[0], fake.au_values("smile.png"), atol=1e-6)
    # Presence is matched by name too: AU28 keeps its own slot (always 0 here), AU45 follows it.
    presence = result.rows["smile"].presence[0]
    assert presence[OPENFACE_PRESENCE.index("AU28")] == 0.0
    assert presence[OPENFACE_PRESENCE.index("AU45")] == (1.0 if fake.au_values("smile.png")[-1] >= 1 else 0.0)
    # The output folder looks as if OpenFace had been run on the originals; the staging folder is gone.
    assert sorted(p.name for p in out.iterdir()) == ["neutral.csv", "neutral_of_details.txt",
                                                     "smile.csv", "smile_of_details.txt"]


def test_several_faces_most_confident_by_default(openface_dir, tmp_path):
    images = make_images(tmp_path / "photos", "two people.jpg")
    result = run_face_landmark_img(images, tmp_path / "csvs", openface_bin=openface_dir)
    chosen = result.rows["two people"]
    assert result.n_faces == {"two people": 2} and len(chosen.confidence) == 1
    assert chosen.confidence[0] == pytest.approx(0.95) and chosen.face[0] == 1
    np.testing.assert_allclose(chosen.intensity[0], fake.au_values("two people.jpg", face=1), atol=1e-6)


def test_several_faces_largest_on_request(openface_dir, tmp_path):
    images = make_images(tmp_path / "photos", "two people.jpg")
    result = run_face_landmark_img(images, tmp_path / "csvs", openface_bin=openface_dir, pick="largest")
    assert calls(tmp_path)[0]["argv"][-2:] == ["-aus", "-2Dfp"]  # landmarks are needed to measure faces
    assert result.rows["two people"].face[0] == 0  # the large, less confident face
    np.testing.assert_allclose(result.rows["two people"].intensity[0], fake.au_values("two people.jpg", 0), atol=1e-6)


def test_images_without_a_face_are_reported(openface_dir, tmp_path):
    images = make_images(tmp_path / "photos", "a.jpg", "noface wall.jpg", "empty.jpg")
    out = tmp_path / "csvs"
    out.mkdir()
    (out / "noface wall.csv").write_text("stale, from an earlier run\n")
    result = run_face_landmark_img(images, out, openface_bin=openface_dir)
    assert sorted(result.rows) == ["a"]
    assert result.missing == [images[1], images[2]]  # no CSV at all / a CSV without rows
    assert not (out / "noface wall.csv").exists()  # the stale CSV would have fed prepare_aus a wrong face


def test_crash_raises_with_output_tail_and_the_users_file_name(openface_dir, tmp_path):
    images = make_images(tmp_path / "photos", "a.jpg", "crash.jpg", "c.jpg")
    out = tmp_path / "csvs"
    with pytest.raises(OpenFaceError) as err:
        run_face_landmark_img(images, out, openface_bin=openface_dir)
    message = str(err.value)
    assert "exit code 1" in message and "--- stderr" in message and "--- stdout" in message
    assert f"Could not open the image: {images[1]}" in message  # not OpenFace's staged name in/img000001.jpg
    assert (out / "a.csv").exists()  # what OpenFace wrote before it stopped is kept


def test_paths_with_spaces_non_ascii_and_upper_case_extensions(openface_dir, tmp_path):
    folder = tmp_path / "my photos" / "Ünïcödé 写真"
    images = make_images(folder, "Zoë smile 1.JPG", "Émile neutral.jpeg")
    out = tmp_path / "résultats csv"
    result = run_face_landmark_img(images, out, openface_bin=openface_dir)
    (call,) = calls(tmp_path)
    assert all(arg.isascii() for arg in call["argv"][1:])  # OpenFace on Windows cannot take other paths
    assert sorted(result.rows) == ["Zoë smile 1", "Émile neutral"]
    np.testing.assert_allclose(result.rows["Zoë smile 1"].intensity[0], fake.au_values("Zoë smile 1.JPG"), atol=1e-6)
    assert (out / "Zoë smile 1.csv").exists()


def test_folder_input_natural_order_and_aligned_output(openface_dir, tmp_path):
    folder = tmp_path / "frames"
    make_images(folder, "img10.jpg", "img2.jpg", "img1.png", "notes.txt", "scan.tif")
    out = tmp_path / "csvs"
    result = run_face_landmark_img(folder, out, openface_bin=openface_dir,
                                   extra_args=["-simalign", "-simsize", "128", "-format_aligned", "jpg"])
    (call,) = calls(tmp_path)
    assert call["argv"][-6:] == ["-aus", "-simalign", "-simsize", "128", "-format_aligned", "jpg"]
    assert call["labels"] == ["img1.png", "img2.jpg", "img10.jpg"]  # natural order; files OpenFace cannot read left out
    assert list(result.rows) == ["img1", "img2", "img10"]
    assert (out / "img10_aligned" / "face_det_000000.jpg").exists()  # aligned folders get the original names too


def test_list_input_is_checked_before_running(openface_dir, tmp_path):
    (a,) = make_images(tmp_path / "x", "a.jpg")
    (a2,) = make_images(tmp_path / "y", "a.png")
    (tif,) = make_images(tmp_path / "z", "scan.tif")
    with pytest.raises(ValueError, match="share the name 'a'"):
        run_face_landmark_img([a, a2], tmp_path / "out", openface_bin=openface_dir)
    with pytest.raises(ValueError, match="convert these first: scan.tif"):
        run_face_landmark_img([tif], tmp_path / "out", openface_bin=openface_dir)
    with pytest.raises(ValueError, match="-out_dir"):
        run_face_landmark_img([a], tmp_path / "out", openface_bin=openface_dir, extra_args=["-out_dir", "elsewhere"])
    assert calls(tmp_path) == []


def test_missing_au_columns_point_at_the_models(openface_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OPENFACE_NO_AUS", "1")
    images = make_images(tmp_path / "photos", "a.jpg")
    with pytest.raises(OpenFaceError, match="AU_predictors"):
        run_face_landmark_img(images, tmp_path / "csvs", openface_bin=openface_dir)


def test_timeout(openface_dir, tmp_path):
    images = make_images(tmp_path / "photos", "slow.jpg")
    with pytest.raises(OpenFaceError, match="timed out after 0.5 s"):
        run_face_landmark_img(images, tmp_path / "csvs", openface_bin=openface_dir, timeout=0.5)


def test_au_table_from_rows_feeds_the_au_table_writer(openface_dir, tmp_path):
    images = make_images(tmp_path / "photos", "a.jpg", "two.jpg")
    result = run_face_landmark_img(images, tmp_path / "csvs", openface_bin=openface_dir)
    intensities, presence = au_table_from_rows(result.rows)
    assert {k: v.shape for k, v in intensities.items()} == {"a": (17,), "two": (17,)}
    assert {k: v.shape for k, v in presence.items()} == {"a": (18,), "two": (18,)}
    save_au_table_csv(intensities, tmp_path / "aus.csv", OPENFACE_17)
    table = load_au_table(tmp_path / "aus.csv", OPENFACE_17)
    np.testing.assert_allclose(table["two"], fake.au_values("two.jpg", face=1), atol=1e-4)


# --- FeatureExtraction ----------------------------------------------------------------------------------------


def test_sequence_folder_frames_in_order_and_failed_frames_reported(openface_dir, tmp_path):
    clip = tmp_path / "clip 01"
    make_images(clip, *[f"frame{k}.jpg" for k in (1, 2, 3, 10)])
    (clip / "frame3.jpg").write_bytes(b"frame3 noface")  # OpenFace loses the face there
    out = tmp_path / "seq"
    result = run_feature_extraction(clip, out, openface_bin=openface_dir)

    (call,) = calls(tmp_path)
    tool = str((openface_dir / "FeatureExtraction").resolve())
    assert call["argv"] == [tool, "-fdir", "in", "-out_dir", "out", "-of", "seq000000", "-aus"]
    assert result.frame_names == ["frame1", "frame2", "frame3", "frame10"]  # natural order, not text order
    assert result.frame.tolist() == [1, 2, 3, 4]
    assert result.success.tolist() == [True, True, False, True]
    assert result.failed == ["frame3"]
    np.testing.assert_allclose(result.rows.intensity[3], fake.au_values("frame10.jpg"), atol=1e-6)
    assert result.csv_path == out / "clip 01.csv" and (out / "clip 01_of_details.txt").exists()
    per_frame = result.per_frame()
    assert list(per_frame) == ["frame1", "frame2", "frame10"]  # failed frames are not AU measurements
    intensities, _ = au_table_from_rows(per_frame)
    np.testing.assert_allclose(intensities["frame2"], fake.au_values("frame2.jpg"), atol=1e-6)


def test_sequence_from_a_video_file(openface_dir, tmp_path):
    video = tmp_path / "clip.avi"
    video.write_text("f1\nf2 noface\nf3\n")  # the stand-in's fake video: one frame label per line
    result = run_feature_extraction(video, tmp_path / "seq", openface_bin=openface_dir, name="subject 1")
    assert calls(tmp_path)[0]["argv"][1:3] == ["-f", "video000000.avi"]
    assert result.frame_names == ["frame_000001", "frame_000002", "frame_000003"]
    assert result.failed == ["frame_000002"]
    np.testing.assert_allclose(result.timestamp, [0.0, 1 / 30, 2 / 30], atol=1e-3)
    assert result.csv_path.name == "subject 1.csv"


def test_sequence_crash_raises(openface_dir, tmp_path):
    clip = tmp_path / "clip"
    frames = make_images(clip, "a.jpg", "crash.jpg")
    with pytest.raises(OpenFaceError, match="FeatureExtraction failed with exit code 1") as err:
        run_feature_extraction(clip, tmp_path / "seq", openface_bin=openface_dir)
    assert f"Could not open the image: {frames[1]}" in str(err.value)
