"""The wrong-clip control (metrics/control.py, pairs.control_scores, evaluate.control_summary): which clip is picked,
that its values are reported under ``<metric>_control``, and that clips of other lengths are put on the result's
frames. Synthetic clips and curves; the real-data run is in test_eval_control.py."""
import shutil

import numpy as np
from PIL import Image

from catalog.au_schema import OPENFACE_AUS
from metrics.analysis import ClipAnalysis
from metrics.control import attach_controls, clip_id
from metrics.evaluate import control_summary
from metrics.inputs import ResultEntry, Sequence
from metrics.pairs import control_scores, source_scores
from metrics.registry import CONTROLLED, METRICS, NUMERIC, control_name


def frame_folder(path, values):
    path.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(values):
        Image.fromarray(np.full((8, 8, 3), v, np.uint8)).save(path / f"{i:03d}.png")
    return Sequence(path.parent.name if path.name == "imgs" else path.name, path, sorted(path.glob("*.png")))


def entry(name, source):
    return ResultEntry(name, Sequence(name, source.path, source.frames), source=source)


def test_clip_id_is_content_not_name(tmp_path):
    a = frame_folder(tmp_path / "SAMM_Negative_asianFemale" / "imgs", [10, 20, 30])
    shutil.copytree(a.path, tmp_path / "SAMM_Negative_westMale" / "imgs")
    twin = frame_folder(tmp_path / "SAMM_Negative_westMale" / "imgs", [10, 20, 30])
    other = frame_folder(tmp_path / "casme2_Positive_westMale" / "imgs", [10, 20, 31])
    assert clip_id(a) == clip_id(twin) != clip_id(other)


def test_an_unreadable_clip_does_not_stop_the_choice(tmp_path):
    good = frame_folder(tmp_path / "src" / "clip1", [1, 2, 3])
    broken = frame_folder(tmp_path / "src" / "clip2", [5, 6, 7])
    broken.frames[1].unlink()  # listed, then gone: its own pair reports it when it loads the clip
    entries = [entry("clip1_result", good), entry("clip2_result", broken)]
    attach_controls(entries, None)
    assert entries[0].control.name == "clip2" and entries[1].control.name == "clip1"


def test_control_is_the_next_distinct_clip_never_a_twin(tmp_path):
    # the MEGC2021 layout: each clip under two template names, byte-identical
    clips = {"A": [1, 2, 3], "B": [4, 5, 6, 7], "C": [8, 9]}
    seqs = {}
    for clip, values in clips.items():
        for template in ("asianFemale", "westMale"):
            seqs[clip + template] = frame_folder(tmp_path / "src" / f"{clip}_{template}" / "imgs", values)
    entries = [entry(f"{key}_result", seq) for key, seq in seqs.items()]
    notes = attach_controls(entries, tmp_path / "src")
    assert notes == []
    picked = {e.name: e.control.path.parent.name for e in entries}
    assert picked["AasianFemale_result"] == picked["AwestMale_result"] == "B_asianFemale"
    assert picked["BwestMale_result"] == "C_asianFemale"
    assert picked["CwestMale_result"] == "A_asianFemale"  # wraps round
    for e in entries:
        assert clip_id(e.control) != clip_id(e.source)
    again = [entry(f"{key}_result", seq) for key, seq in seqs.items()]
    attach_controls(again, tmp_path / "src")
    assert [e.control.path for e in again] == [e.control.path for e in entries]  # deterministic


def test_sources_not_paired_with_any_result_still_serve_as_controls(tmp_path):
    used = frame_folder(tmp_path / "src" / "clip1", [1, 2, 3])
    frame_folder(tmp_path / "src" / "clip2", [5, 6, 7])
    (e,) = [entry("clip1_result", used)]
    attach_controls([e], tmp_path / "src")
    assert e.control.name == "clip2"


def test_one_distinct_clip_gives_no_control_and_says_so(tmp_path):
    a = frame_folder(tmp_path / "src" / "x_asianFemale" / "imgs", [1, 2, 3])
    shutil.copytree(a.path, tmp_path / "src" / "x_westMale" / "imgs")
    b = frame_folder(tmp_path / "src" / "x_westMale" / "imgs", [1, 2, 3])
    entries = [entry("r1", a), entry("r2", b)]
    (note,) = attach_controls(entries, tmp_path / "src")
    assert "only one distinct source clip" in note and all(e.control is None for e in entries)


def analysed(aus: np.ndarray, flow: dict, tex: dict) -> ClipAnalysis:
    n = len(aus)
    return ClipAnalysis(rgb=np.zeros((n, 4, 4, 3), np.uint8), grey=np.zeros((n, 4, 4)), valid=np.ones(n, bool),
                        aus=aus, descriptors=np.full((n, 128), np.nan),
                        profiles={"flow": flow, "strain": flow, "onset": 0, "magnitude": None}, texture=tex)


def curve(n: int, apex: float, width: float) -> np.ndarray:
    t = np.linspace(0, 1, n)
    return np.exp(-0.5 * ((t - apex) / width) ** 2)


def clip_with(n: int, apex: float) -> ClipAnalysis:
    c = curve(n, apex, 0.12)
    aus = np.zeros((n, len(OPENFACE_AUS)))
    aus[:, OPENFACE_AUS.index("AU12")] = 2 * c
    return analysed(aus, {"mouth": 1.5 * c}, {"mouth": 0.3 * c})


def test_control_values_sit_beside_every_motion_metric_and_other_lengths_are_resampled():
    result = clip_with(20, 0.6)
    right = clip_with(31, 0.6)  # the source, at another length
    wrong = clip_with(13, 0.15)  # another clip: apex early, another length again
    values, _ = source_scores(result, right, fps=200.0)
    control = control_scores(result, wrong, fps=200.0)
    assert set(control) == {control_name(n) for n in CONTROLLED}
    assert {"au_r", "flow_r", "strain_r", "flow_amplitude_error", "texture_r", "apex_error_ms"} <= set(CONTROLLED)
    for name in CONTROLLED:
        assert control[control_name(name)] is not None, name
    assert values["au_r"] > 0.99 and values["flow_r"] > 0.99 and values["texture_r"] > 0.99
    assert control["au_r_control"] < 0.5 and control["texture_r_control"] < 0.5
    assert values["apex_error_frames"] <= 1 < control["apex_error_frames_control"]
    # both clips peak at 1.5 px (up to the sampling of the curves): amplitude alone cannot tell them apart, which
    # is what the control shows
    assert values["flow_amplitude_error"] < 0.05 and control["flow_amplitude_error_control"] < 0.05


def test_control_columns_are_registered_beside_their_metric():
    names = list(METRICS)
    for name in CONTROLLED:
        assert names.index(control_name(name)) == names.index(name) + 1
        assert control_name(name) in NUMERIC  # so the summary means include them
        assert METRICS[control_name(name)].direction == METRICS[name].direction


def test_control_summary_counts_pairs_where_the_right_clip_wins():
    def record(au_r, au_r_control, status="ok"):
        return {"status": status, "metrics": {"au_r": au_r, "au_r_control": au_r_control}}

    summary = control_summary([record(0.9, 0.1), record(0.2, 0.5), record(0.7, None), record(0.9, 0.0, "failed")])
    au = summary["au_r"]
    assert au["pairs"] == 2 and au["right_better"] == 1
    assert au["right"] == 0.55 and au["wrong"] == 0.3 and abs(au["wrong_sd"] - 0.2) < 1e-12
    assert summary["flow_r"]["pairs"] == 0 and summary["flow_r"]["right"] is None
