import json
import pickle

import numpy as np
import pytest

from catalog.au_schema import N2ME_18, OPENFACE_17, SCHEMAS, schema_for_size
from data.au_table import UnsafePickleError, find_au_table, load_au_table, save_au_table_csv
from data.id_lists import read_id_list
from media.images import deterministic_split


def test_schemas_know_their_sizes_and_order():
    assert OPENFACE_17.n == 17 and N2ME_18.n == 18
    assert N2ME_18.names[-2:] == ("AU27*", "AU45")  # mouth opening sits before AU45, as in N2ME
    assert schema_for_size(18) is N2ME_18
    with pytest.raises(ValueError, match="no AU schema has 5"):
        schema_for_size(5)
    assert set(SCHEMAS) == {"openface17", "n2me18"}


@pytest.mark.parametrize("fmt", ["pkl", "csv", "json"])
def test_au_table_formats_round_trip(tmp_path, fmt):
    table = {"a": np.arange(17) / 4.0, "b": np.zeros(17)}
    path = tmp_path / f"aus.{fmt}"
    if fmt == "pkl":
        path.write_bytes(pickle.dumps(table))
    elif fmt == "csv":
        save_au_table_csv(table, path, OPENFACE_17)
    else:
        path.write_text(json.dumps({k: v.tolist() for k, v in table.items()}))
    loaded = load_au_table(path, OPENFACE_17)
    assert set(loaded) == {"a", "b"}
    np.testing.assert_allclose(loaded["a"], table["a"], atol=1e-4)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "aus.pkl"
    path.write_bytes(pickle.dumps({"a": _Evil()}))
    with pytest.raises(UnsafePickleError, match=r"refused.*(posix|os)\.system"):
        load_au_table(path, OPENFACE_17)


@pytest.mark.parametrize("vec, message", [
    (np.ones(16), "has 16 values"), (np.full(17, np.nan), "NaN"), (-np.ones(17), r"outside 0..5 in column AU01=-1")])
def test_bad_au_vectors_are_named(tmp_path, vec, message):
    path = tmp_path / "aus.pkl"
    path.write_bytes(pickle.dumps({"img7": vec}))
    with pytest.raises(ValueError, match=message) as err:
        load_au_table(path, OPENFACE_17)
    assert "img7" in str(err.value) and str(path) in str(err.value)


def test_find_au_table_explains_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="aus_openface.pkl"):
        find_au_table(tmp_path)


def test_id_lists_strip_extensions(tmp_path):
    (tmp_path / "train_ids.csv").write_text("img1.jpg\nimg2.png\n\n")
    (tmp_path / "train_ids.txt").write_text("img3\nimg4.bmp\n")
    assert read_id_list(tmp_path / "train_ids.csv") == ["img1", "img2"]
    assert read_id_list(tmp_path / "train_ids.txt") == ["img3", "img4"]


def test_deterministic_split_is_stable_and_disjoint():
    names = [f"n{i}" for i in range(200)]
    train, test = deterministic_split(names)
    assert deterministic_split(list(reversed(names)))[1] == sorted(test, key=names.index)[::-1]
    assert not set(train) & set(test) and len(train) + len(test) == 200 and 0 < len(test) < 30
    # Adding images never moves an existing image between splits.
    train2, test2 = deterministic_split(names + ["extra1", "extra2"])
    assert set(test) <= set(test2)
