"""OpenFace CSVs read by column name, on real MEGC2021 files and on a synthetic one with shuffled columns."""
import numpy as np

from catalog.au_schema import OPENFACE_17
from data.au_table import load_au_table
from data.prepare_aus import main as prepare_main
from openface.csv_io import read_openface_csv


def test_columns_are_matched_by_name_not_position(tmp_path):
    names = [f"{au}_r" for au in OPENFACE_17.names]
    values = np.arange(17) / 10.0
    header = ["face", "AU28_c", "confidence", *reversed(names)]  # any order, OpenFace's ", " separator
    row = ["0", "1.0", "0.9", *[f"{v:.2f}" for v in reversed(values)]]
    path = tmp_path / "x.csv"
    path.write_text(", ".join(header) + "\n" + ", ".join(row) + "\n")
    rows = read_openface_csv(path)
    np.testing.assert_allclose(rows.intensity[0], values)
    assert rows.presence[0, 16] == 1.0  # AU28 presence is kept in its own slot


def test_prepare_aus_from_real_megc_csvs(megc_root, tmp_path):
    folder = megc_root / "casme2_Positive_asianFemale"
    out = tmp_path / "aus.csv"
    assert prepare_main(["--openface_csvs", str(folder / "csvs"), "--out", str(out)]) == 0
    table = load_au_table(out, OPENFACE_17)
    frames = sorted(p.stem for p in (folder / "imgs").iterdir())
    assert set(frames) <= set(table)
    first = read_openface_csv(folder / "csvs" / f"{frames[0]}.csv")
    np.testing.assert_allclose(table[frames[0]], first.intensity[0], atol=1e-4)
    # The shipped pickle (after ULME's re-encoding) reads through the restricted unpickler and covers every frame.
    shipped = load_au_table(folder / "aus_openface.pkl", OPENFACE_17)
    assert set(frames) <= set(shipped)
