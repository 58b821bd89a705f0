"""AU-response calibration (models/au_response.py): curves from a sweep, inversion, and test mode's use of it."""
import json

import numpy as np
import pytest
import torch

from catalog.au_schema import OPENFACE_AUS
from models import au_response as calibration

LEVELS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def _sweep(responses: dict[str, list[float]], r: float = 0.9) -> dict:
    """A ``tools.au_grid --measure`` record with the given mean responses per AU."""
    return {"faces": ["a", "b"], "levels": LEVELS,
            "remeasured": {au: {"mean_by_level": m, "pearson_r_level_vs_measured": r} for au, m in responses.items()}}


def test_an_under_responding_au_is_driven_harder_and_the_anchor_is_kept():
    curves, skipped = calibration.curves_from_grid(_sweep({"AU12": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]}), OPENFACE_AUS)
    assert not skipped
    cal = calibration.ResponseCurves(curves)
    j = OPENFACE_AUS.index("AU12")
    anchor = np.zeros(17)
    targets = np.zeros((3, 17))
    targets[:, j] = [0.0, 1.0, 2.0]
    targets[:, 0] = 1.5  # an AU without a curve passes through unchanged
    drive = cal.drive(targets, anchor)
    assert drive[:, j] == pytest.approx([0.0, 2.0, 4.0], abs=1e-4)  # the face shows half: ask for twice
    assert drive[:, 0] == pytest.approx(1.5)
    # Anchored on a template with AU12 = 1: frame 0 (target = anchor) is driven as before; +1 shown needs +2.
    anchor[j] = 1.0
    assert cal.drive(targets, anchor)[:, j] == pytest.approx([0.0, 1.0, 3.0], abs=1e-4)
    # Beyond the largest response the drive stops at the top of the range.
    targets[:, j] = 4.0
    assert cal.drive(targets, np.zeros(17))[:, j] == pytest.approx(5.0)


def test_flat_or_noisy_responses_are_not_inverted():
    sweep = _sweep({"AU04": [0.2, 0.2, 0.25, 0.2, 0.3, 0.3], "AU01": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]})
    sweep["remeasured"]["AU01"]["pearson_r_level_vs_measured"] = 0.2
    curves, skipped = calibration.curves_from_grid(sweep, OPENFACE_AUS)
    assert curves == {} and set(skipped) == {"AU04", "AU01"}


def test_a_non_monotone_response_is_made_invertible():
    curve = calibration.AUCurve.fitted(LEVELS, [0.0, 1.0, 0.8, 2.0, 1.9, 3.0])
    assert np.all(np.diff(curve.response) > 0)
    assert curve.level_for(np.array([2.0]))[0] == pytest.approx(3.0, abs=1e-3)


def test_saved_curves_are_found_beside_the_checkpoint(tmp_path):
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"")
    assert calibration.load_response(ckpt, OPENFACE_AUS) is None  # no file: no calibration
    out = calibration.save_response(_sweep({"AU12": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]}), OPENFACE_AUS, ckpt, "cmd")
    assert out == tmp_path / "model.calibration.json"
    assert list(json.loads(out.read_text())["curves"]) == ["AU12"]
    loaded = calibration.load_response(ckpt, OPENFACE_AUS)
    assert list(loaded.curves) == [OPENFACE_AUS.index("AU12")]


def test_test_mode_drives_through_the_calibration_unless_switched_off(tmp_path):
    from checkpoints import SMALL_CHECKPOINT
    from data.sequences import Template, read_au_matrix
    from solvers import tester

    if not SMALL_CHECKPOINT.is_file():
        pytest.skip(f"small weights not present at {SMALL_CHECKPOINT}")
    ckpt = tmp_path / "small.pth"
    ckpt.write_bytes(SMALL_CHECKPOINT.read_bytes())
    calibration.save_response(_sweep({"AU12": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]}), OPENFACE_AUS, ckpt, "cmd")
    model = tester.SequenceGenerator(ckpt, torch.device("cpu"))
    matrix = tmp_path / "m.csv"
    matrix.write_text("AU12\n0\n1\n2\n")
    clip = read_au_matrix(matrix, model.schema)
    template = Template(tmp_path / "t.png", np.zeros(17), np.full((64, 64, 3), 128, np.uint8))
    out = tester.SequenceOutput(output_size=128, videos=False)
    on = tester.generate_sequence(model, clip, template, tmp_path / "on", tester.TrajectorySettings(), out)
    driven = np.loadtxt(on.out_dir / "aus_generator_input.csv", delimiter=",", skiprows=1, usecols=range(1, 18))
    assert driven[:, OPENFACE_AUS.index("AU12")] == pytest.approx([0.0, 2.0, 4.0], abs=1e-3)
    assert json.loads((on.out_dir / "run.json").read_text())["calibration"].endswith("small.calibration.json")
    off = tester.generate_sequence(model, clip, template, tmp_path / "off",
                                   tester.TrajectorySettings(calibrate=False), out)
    assert not (off.out_dir / "aus_generator_input.csv").exists()
    assert json.loads((off.out_dir / "run.json").read_text())["calibration"] is None


def test_auto_au_mode_is_relative_only_when_the_template_aus_are_known(tmp_path):
    from checkpoints import SMALL_CHECKPOINT
    from data.sequences import Template, read_au_matrix
    from solvers import tester

    if not SMALL_CHECKPOINT.is_file():
        pytest.skip(f"small weights not present at {SMALL_CHECKPOINT}")
    model = tester.SequenceGenerator(SMALL_CHECKPOINT, torch.device("cpu"))
    matrix = tmp_path / "m.csv"
    matrix.write_text("AU04\n1\n2\n")
    clip = read_au_matrix(matrix, model.schema)
    pixels = np.full((64, 64, 3), 128, np.uint8)
    out = tester.SequenceOutput(output_size=128, videos=False)
    traj = tester.TrajectorySettings(calibrate=False)  # au_mode "auto", the default
    known = tester.generate_sequence(model, clip, Template(tmp_path / "a.png", np.full(17, 0.5), pixels),
                                     tmp_path / "known", traj, out)
    unknown = tester.generate_sequence(model, clip, Template(tmp_path / "b.png", None, pixels),
                                       tmp_path / "unknown", traj, out)
    assert json.loads((known.out_dir / "run.json").read_text())["au_mode_used"] == "relative"
    assert json.loads((unknown.out_dir / "run.json").read_text())["au_mode_used"] == "absolute"
    driven = np.loadtxt(known.out_dir / "aus_driven.csv", delimiter=",", skiprows=1, usecols=range(1, 18))
    assert driven[:, OPENFACE_AUS.index("AU04")] == pytest.approx([0.5, 1.5])  # template 0.5 + change from onset
