"""The wrong-clip control on real data: ULME-GAN's submitted MEGC2021 results scored against the MEGC2021 clips.

Three pairs (two templates of one clip, and one pair of another clip), a few frames each to stay fast: every pair
must report a control value beside each motion metric, scored against a different clip, never the same clip under
its other template name; the control clip's other length is resampled and said so. Skips when the data is absent.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from media.images import list_images
from metrics.control import clip_id
from metrics.evaluate import evaluate
from metrics.inputs import Sequence
from metrics.registry import CONTROLLED, control_name

pytestmark = pytest.mark.slow  # about 25 s on 2 cores: MediaPipe and dlib on 3 pairs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MEGC, ULME = DATA / "megc2021", DATA / "ulme_megc2021_results"
SUFFIX = "_ULMEGAN_40_re_code_linear_fitting"
# pair -> frames kept (evenly spread, onset to offset): the two clips get different lengths on purpose
PAIRS = {"casme2_Positive_asianFemale": 9, "casme2_Positive_westMale": 9, "SAMM_Surprise_westMale": 7}


def spread(paths: list[Path], n: int) -> list[Path]:
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


def link_subset(src: Path, dst: Path, n: int) -> None:
    """n frames of ``src`` linked into ``dst`` and numbered without gaps (a gap would mark a result incomplete)."""
    dst.mkdir(parents=True)
    for i, p in enumerate(spread(list(list_images(src).values()), n)):
        os.symlink(p.resolve(), dst / f"{i:03d}{p.suffix}")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    if not (MEGC.is_dir() and ULME.is_dir()):
        pytest.skip(f"real MEGC2021 data or ULME-GAN's results not found under {DATA} (CI provides ../shared/data)")
    root = tmp_path_factory.mktemp("control")
    for pair, n in PAIRS.items():
        link_subset(MEGC / pair / "imgs", root / "megc" / pair / "imgs", n)
        (root / "megc" / pair / "imgs2").mkdir()
        for template in list_images(MEGC / pair / "imgs2").values():
            os.symlink(template.resolve(), root / "megc" / pair / "imgs2" / template.name)
        link_subset(ULME / (pair + SUFFIX), root / "ulme" / (pair + SUFFIX), 8)  # the result: 8 frames
    doc = evaluate(root / "ulme", root / "megc", root / "megc", root / "eval", 200.0, report=True)
    return doc, root


def test_every_pair_reports_a_control_against_another_clip(scored):
    doc, root = scored
    assert len(doc["pairs"]) == 3
    for pair in doc["pairs"]:
        assert pair["status"] == "ok", pair["notes"]
        control = pair["details"]["control"]
        source, wrong = Path(pair["source"]), Path(control["source"])
        ids = [clip_id(Sequence(p.name, p, list(list_images(p).values()))) for p in (source, wrong)]
        assert ids[0] != ids[1], f"{pair['pair']}: the control is its own clip under another name"
        for name in CONTROLLED:
            assert control_name(name) in pair["metrics"], name
        for name in ("au_r", "flow_r", "strain_r", "flow_amplitude_error", "texture_r", "apex_error_ms"):
            assert pair["metrics"][name] is not None and pair["metrics"][control_name(name)] is not None, name
    # the Positive clip's two template pairs are both scored against the Surprise clip, and the other way round
    by_name = {p["pair"].removesuffix(SUFFIX): p for p in doc["pairs"]}
    assert Path(by_name["casme2_Positive_westMale"]["details"]["control"]["source"]).parent.name == \
        "SAMM_Surprise_westMale"
    assert Path(by_name["SAMM_Surprise_westMale"]["details"]["control"]["source"]).parent.name == \
        "casme2_Positive_asianFemale"
    # the control clip has another length than the result (7 or 9 frames against 8): resampled, and said so
    assert all("lengths differ" in p["details"]["control"]["aligned"] for p in doc["pairs"])


def test_control_is_reported_in_the_summary_the_files_and_the_report(scored):
    doc, root = scored
    (everything,) = [r for r in doc["summary"] if r["dataset"] == "all" and r["emotion"] == "all"]
    assert everything["flow_r_control"] is not None and everything["texture_r_control"] is not None
    control = doc["batch"]["control"]
    assert set(control) == set(CONTROLLED) and control["au_r"]["pairs"] == 3
    saved = json.loads((root / "eval" / "metrics.json").read_text())
    assert saved["batch"]["control"] == control
    header = (root / "eval" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header.index("flow_r_control") == header.index("flow_r") + 1
    html = (root / "eval" / "report.html").read_text()
    assert "Wrong-clip control" in html and "pairs where right beats wrong" in html and "wrong clip" in html
