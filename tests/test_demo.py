"""The one-command demo (tools/demo.py) with the bundled model, and the AU-control grid (tools/au_grid.py)."""
import json

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, TINY_MODEL, make_tiny_dataset
from main import main
from media.video import probe_video
from tools import au_grid, demo

SMALL = ROOT / "pretrained" / "ganimation_cpu_small.pth"  # a real model that runs in a second
FRAMES = 30  # rows of examples/au_matrices/positive.csv and surprise.csv


@pytest.mark.skipif(not SMALL.is_file(), reason=f"small weights not present at {SMALL}")
@pytest.mark.slow
def test_demo_writes_both_sequences_from_the_sample_photo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--output_size", "128", "--ckpt", str(SMALL)]) == 0
    assert "overview" in capsys.readouterr().out
    record = json.loads((out / "demo.json").read_text())
    assert record["template"].endswith("grace_hopper.jpg") and record["checkpoint"] == str(SMALL)
    for name in demo.DRIVERS:
        folder = out / name
        assert len(list((folder / "frames").glob("*.png"))) == FRAMES
        for video in ("target.mp4", "compare.mp4"):
            info = probe_video(folder / video)
            assert info["frames"] == FRAMES and info["fps"] == 30 and info["codec"] == "h264"
        assert probe_video(folder / "compare.mp4")["size"][0] > 256  # photo | result
        with Image.open(folder / "target.gif") as gif:
            assert gif.n_frames == FRAMES
        assert (folder / "au_curves.png").stat().st_size > 0
        assert record["sequences"][name]["frames"] == FRAMES
    with Image.open(out / "overview.png") as sheet:
        assert sheet.width > 4 * 128
    # A second run replaces the first demo's folders instead of piling up positive_2, surprise_2.
    assert demo.main(["--out", str(out), "--output_size", "128", "--no_video", "--ckpt", str(SMALL)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["positive", "surprise"]


def test_sample_photo_is_a_decodable_face_sized_image():
    with Image.open(demo.sample_face()) as photo:  # the demo's default template: must decode, big enough to crop
        assert photo.mode == "RGB" and min(photo.size) >= 256


def test_missing_sample_photo_names_the_template_flag(tmp_path, monkeypatch):
    import matplotlib
    from matplotlib import cbook

    def no_sample_data(*args, **kwargs):
        raise OSError("sample data removed")

    monkeypatch.setattr(cbook, "get_sample_data", no_sample_data)
    monkeypatch.setattr(matplotlib, "get_data_path", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--template"):
        demo.sample_face()


@pytest.mark.slow
def test_au_grid_on_a_data_root(tmp_path):
    data = make_tiny_dataset(tmp_path / "data", n=6, table="csv")
    (data / "test_ids.txt").write_text("face0001\nface0004\n")
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "g", *TINY_MODEL,
                 "--batch_size", "2", "--max_steps", "1"]) == 0
    out = tmp_path / "grid.png"
    assert au_grid.main(["--ckpt", str(tmp_path / "ck" / "g" / "latest.pth"), "--faces", str(data), "--out", str(out),
                         "--aus", "AU12,AU04", "--levels", "0,2.5,5", "--cell", "32", "--base", "zeros"]) == 0
    with Image.open(out) as img:
        grid = np.asarray(img.convert("RGB"))
    # 2 held-out rows of 32 px under the header; input + 2 AUs x 3 levels columns.
    assert grid.shape[0] > 2 * 32 and grid.shape[1] >= 32 * 7
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["faces"] == ["face0001", "face0004"] and record["base"] == "zeros"
    assert set(record["region_change_at_top_level"]) == {"AU12", "AU04"}


def test_au_grid_targets_set_one_au_on_the_base():
    from catalog.au_schema import OPENFACE_17

    face = au_grid.GridFace("f", np.zeros((8, 8, 3), np.uint8), np.full(17, 1.0))
    t = au_grid.targets_for(face, OPENFACE_17, ["AU12"], [0.0, 5.0], "measured")
    j = OPENFACE_17.index("AU12")
    assert t.shape == (3, 17) and t[1, j] == 0 and t[2, j] == 5
    assert np.all(np.delete(t, j, axis=1) == 1.0)
    z = au_grid.targets_for(face, OPENFACE_17, ["AU12"], [3.0], "zeros")
    assert z[1].sum() == 3.0 and z[0].sum() == 0
