"""The side-by-side command (tools/side_by_side.py): the frames-only view of ULME-GAN's folders, the table and the
contact sheet, on tiny fixtures (the evaluation itself is tested in test_metrics.py)."""
import json

import numpy as np
from PIL import Image

from tools import side_by_side


def _img(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)


def test_frames_only_view_leaves_the_videos_out(tmp_path):
    ulme = tmp_path / "ulme" / "casme2_Positive_westMale_ULMEGAN_40_re_code_linear_fitting"
    for i in range(3):
        _img(ulme / f"{i:03d}.jpg", 10 * i)
    for video in ("source.mp4", "target.mp4"):
        (ulme / video).write_bytes(b"not frames")
    view = side_by_side.frames_only_view(tmp_path / "ulme", tmp_path / "view")
    (folder,) = view.iterdir()
    assert folder.name == ulme.name and sorted(p.name for p in folder.iterdir()) == ["000.jpg", "001.jpg", "002.jpg"]
    side_by_side.frames_only_view(tmp_path / "ulme", tmp_path / "view")  # again: the links are reused


def test_table_shows_the_difference_and_which_targets_are_met():
    cols = side_by_side.table_columns()
    ulme = {c: 0.5 for c in cols} | {"pairs": 12, "flow_amplitude_error": 1.0, "identity_same_rate": 1.0}
    ours = {c: 0.6 for c in cols} | {"pairs": 12, "flow_amplitude_error": 1.2, "identity_same_rate": 1.0,
                                     "ssim_static": 0.47, "fd_dlib128": None, "flow_r_control": 0.25}
    table = side_by_side.comparison_table({"ULME": ulme, "ours": ours})
    lines = table.strip().splitlines()
    assert len(lines) == 6 and lines[2].startswith("| ULME | 12 |")
    assert "| ours - ULME | | 0.100 |  | 0.100 |" in lines[4]  # au_r's difference; its control column has none
    target = lines[5]
    assert target.startswith("| ours: target |")
    assert ">= ULME: met" in target and "<= ULME: missed" in target  # au_r up, amplitude error up
    assert ">= ULME - 0.02: missed" in target and "= 1.0: met" in target
    assert "| - |" in lines[3]  # a null value shows as -, not 0


def test_each_motion_metric_has_its_control_beside_it_and_rows_are_generic():
    head = side_by_side.comparison_table({"a": {"pairs": 1}, "b": {"pairs": 1}, "c": {"pairs": 2}}).splitlines()
    cells = [c.strip() for c in head[0].split("|")]
    for metric in ("au_r", "flow_r", "flow_amplitude_error", "apex_error_ms", "texture_r"):
        assert cells[cells.index(metric) + 1] == f"{metric} ctl", metric
    assert "identity_distance ctl" not in cells  # not a motion metric: no control
    # three systems: a row each, and a difference and target row for each system after the reference
    assert [line.split("|")[1].strip() for line in head[2:]] == ["a", "b", "c", "b - a", "b: target", "c - a",
                                                                    "c: target"]
    ours = {c: 0.6 for c in side_by_side.table_columns()} | {"pairs": 12, "flow_r_control": 0.25}
    row = side_by_side.comparison_table({"ULME": ours, "ours": ours}).splitlines()[2]
    values = [c.strip() for c in row.split("|")]
    assert values[cells.index("flow_r ctl")] == "0.250"


def test_system_flag_takes_a_label_and_a_folder():
    assert side_by_side.parse_system("warp only=/tmp/w") == ("warp only", side_by_side.Path("/tmp/w"))
    with side_by_side_raises():
        side_by_side.parse_system("/tmp/w")


def side_by_side_raises():
    import argparse

    import pytest

    return pytest.raises(argparse.ArgumentTypeError, match="LABEL=DIR")


def test_contact_sheet_has_a_row_per_pair_and_a_column_per_system_at_the_apex(tmp_path):
    root, ulme, ours, warp = tmp_path / "megc", tmp_path / "ulme", tmp_path / "ours", tmp_path / "warp"
    for pair in ("SAMM_Positive_asianFemale", "casme2_Surprise_westMale"):
        for i in range(4):
            _img(root / pair / "imgs" / f"{i}.jpg", 40 * i)
            _img(ulme / f"{pair}_ULMEGAN_40_re_code_linear_fitting" / f"{i}.jpg", 40 * i + 5)
            _img(ours / f"{pair}_ganimation_15_re_code_linear_fitting" / "frames" / f"{i:03d}.png", 40 * i + 9)
            _img(warp / f"{pair}_ganimation_15_re_code_linear_fitting_warp" / "frames" / f"{i:03d}.png", 40 * i + 3)
        _img(root / pair / "imgs2" / "t.jpg", 200)
        (ours / f"{pair}_ganimation_15_re_code_linear_fitting" / "run.json").write_text(json.dumps({"apex": 2}))
    sheet = side_by_side.comparison_sheet(root, ulme, [("ours", ours), ("warp only", warp)], cell=16)
    assert sheet.size == (5 * 16, 14 + 2 * (16 + 14))
    row = np.asarray(sheet)[14 + 14 + 8]  # middle of the first row's cells
    assert [int(row[c * 16 + 8, 0]) for c in range(5)] == [200, 80, 85, 89, 83]  # every column at apex frame 2
