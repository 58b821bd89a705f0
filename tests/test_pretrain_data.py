"""Merging prepared UTKFace + London folders into one training root (tools/pretrain_data.py)."""
import json

import numpy as np
import pytest
from PIL import Image

from catalog.au_schema import OPENFACE_17, OPENFACE_AUS
from data.au_table import load_au_table
from data.id_lists import read_id_list
from tools import pretrain_data


def prepared(root, names):
    """A folder shaped like openface.prepare's output: imgs/<name>.png and aus.csv."""
    (root / "imgs").mkdir(parents=True)
    lines = ["name," + ",".join(OPENFACE_AUS)]
    for i, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), i % 255, np.uint8)).save(root / "imgs" / f"{name}.png")
        lines.append(name + "," + ",".join(f"{(i % 5) * 0.5:.4f}" for _ in OPENFACE_AUS))
    (root / "aus.csv").write_text("\n".join(lines) + "\n")
    return root


def test_merge_holds_out_whole_london_people_and_cleans_names(tmp_path):
    people = [f"{i:03d}" for i in range(1, 41)]
    london = prepared(tmp_path / "london", [f"{e}__{p}_{'03' if e == 'neutral' else '08'}"
                                            for p in people for e in ("neutral", "smiling")])
    utk_names = [f"{20 + i}_0_1_2017011{i:010d}" for i in range(60)] + ["55_0_0_20170116232725357jpg.chip"]
    utk = prepared(tmp_path / "utk", utk_names)
    out = tmp_path / "merged"
    assert pretrain_data.main(["--utkface", str(utk), "--london", str(london), "--out", str(out)]) == 0

    train, test = read_id_list(out / "train_ids.txt"), read_id_list(out / "test_ids.txt")
    assert len(train) + len(test) == 80 + 61 and not set(train) & set(test)
    table = load_au_table(out / "aus.csv", OPENFACE_17)
    assert set(table) == set(train) | set(test)
    assert all((out / "imgs" / f"{n}.png").is_file() for n in table)
    assert "utk__55_0_0_20170116232725357jpg_chip" in table  # a dot would be read as an extension

    def person(name):
        return name.rsplit("__", 1)[1].split("_")[0]

    london_train = {person(n) for n in train if n.startswith("london__")}
    london_test = {person(n) for n in test if n.startswith("london__")}
    assert london_test and not london_train & london_test  # whole people held out
    assert sum(n.startswith("london__") for n in test) == 2 * len(london_test)  # both photos of each
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["held_out_london_people"] == sorted(london_test)
    assert "non-commercial" in manifest["licences"]["utk"]

    # Stable: the same split again, and the merged root is rebuilt in place.
    assert pretrain_data.main(["--utkface", str(utk), "--london", str(london), "--out", str(out)]) == 0
    assert read_id_list(out / "test_ids.txt") == test


def test_merge_refuses_a_foreign_output_folder(tmp_path, capsys):
    london = prepared(tmp_path / "london", ["neutral__001_03", "smiling__001_08", "neutral__002_03"])
    utk = prepared(tmp_path / "utk", ["20_0_1_1", "21_0_1_2"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    assert pretrain_data.main(["--utkface", str(utk), "--london", str(london), "--out", str(tmp_path / "mine")]) == 2
    assert "not a merged pre-training root" in capsys.readouterr().err
    assert (tmp_path / "mine" / "precious.txt").is_file()


def test_london_names_must_carry_a_person_id():
    with pytest.raises(ValueError, match="NNN"):
        pretrain_data.london_person("smiling__alice")
