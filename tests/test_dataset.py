import pickle

import pytest
import torch
from PIL import Image

from catalog.au_schema import OPENFACE_17
from data.augment import prepare_batch
from data.dataset import build_training_set
from data.sampler import EpochBatchSampler
from helpers import make_tiny_dataset
from media.images import list_images, natural_key


def test_grayscale_and_bmp_become_rgb_at_final_size(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", n=4, size=50, mode="L", ext=".bmp")
    ds, info = build_training_set(root, OPENFACE_17, load_size=32)
    img, aus, _ = ds[0]
    assert img.shape == (3, 32, 32) and img.dtype == torch.uint8
    assert aus.shape == (17,) and float(aus.max()) <= 1.0  # scaled from 0..5
    assert info.id_source == "deterministic split"


def test_images_sort_naturally(tmp_path):
    for name in ("img10", "img9", "img100", "img1"):
        Image.new("RGB", (4, 4)).save(tmp_path / f"{name}.jpg")
    assert list(list_images(tmp_path)) == ["img1", "img9", "img10", "img100"]
    assert natural_key("a2") < natural_key("a10")


def test_missing_and_empty_image_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image folder"):
        build_training_set(tmp_path, OPENFACE_17)
    (tmp_path / "imgs").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        build_training_set(tmp_path, OPENFACE_17)


def test_missing_au_entries_are_named_with_count(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", n=30)
    table = pickle.loads((root / "aus_openface.pkl").read_bytes())
    for name in list(table)[:25]:
        del table[name]
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table))
    (root / "train_ids.csv").write_text("".join(f"face{i:04d}.jpg\n" for i in range(30)))
    with pytest.raises(KeyError) as err:
        build_training_set(root, OPENFACE_17, load_size=32)
    msg = err.value.args[0]
    assert "25 images" in msg and "face0000" in msg and "face0019" in msg and "face0024" not in msg  # 20 shown


def test_truncated_image_is_named_or_skipped(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", n=6)
    bad = root / "imgs" / "face0002.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(ValueError, match="face0002.jpg") as err:
        build_training_set(root, OPENFACE_17, load_size=32)
    assert "--skip_bad" in str(err.value)
    ds, info = build_training_set(root, OPENFACE_17, load_size=32, skip_bad=True)
    assert "face0002" in info.skipped_bad and "face0002" not in info.train


def test_stream_mode_holds_no_pixels_but_same_images(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", n=5)
    cached, _ = build_training_set(root, OPENFACE_17, load_size=32, cache="ram")
    streamed, _ = build_training_set(root, OPENFACE_17, load_size=32, cache="stream")
    assert streamed.pixels is None
    assert torch.equal(cached[3][0], streamed[3][0])


def test_sampler_resumes_mid_epoch_and_shards_ranks():
    full = list(EpochBatchSampler(20, 3, seed=1, epoch=2))
    assert list(EpochBatchSampler(20, 3, seed=1, epoch=2, start_batch=2)) == full[2:]
    r0 = list(EpochBatchSampler(20, 3, seed=1, epoch=2, rank=0, world_size=2))
    r1 = list(EpochBatchSampler(20, 3, seed=1, epoch=2, rank=1, world_size=2))
    flat0, flat1 = sum(r0, []), sum(r1, [])
    assert len(r0) == len(r1) == 3 and not set(flat0) & set(flat1)
    assert full != list(EpochBatchSampler(20, 3, seed=1, epoch=3))  # new order each epoch


def test_prepare_batch_is_reproducible_and_in_range():
    imgs = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    aus = torch.rand(4, 17)
    a = prepare_batch(imgs, aus, final_size=32, crop=True, flip=True, aus_noise=0.1,
                      generator=torch.Generator().manual_seed(3))
    b = prepare_batch(imgs, aus, final_size=32, crop=True, flip=True, aus_noise=0.1,
                      generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["src_img"].shape == (4, 3, 32, 32) and a["src_img"].min() >= -1 and a["src_img"].max() <= 1
    assert a["tar_aus"].min() >= 0 and (a["tar_aus"] - aus.roll(1, 0)).abs().max() <= 0.1 + 1e-6
    assert torch.equal(a["tar_img"], a["src_img"].roll(1, 0))
