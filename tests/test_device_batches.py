"""The device data path gives the loader path's batches, resumes exactly, and trains to the same weights."""
import pytest
import torch

from catalog.au_schema import OPENFACE_17
from checkpoints import read
from data.augment import prepare_batch, random_crop
from data.dataset import build_training_set, collate_batch
from data.device_batches import BatchSettings, DeviceBatches, use_device_path
from data.sampler import EpochBatchSampler
from helpers import TINY_MODEL, make_tiny_dataset
from main import main

SETTINGS = dict(batch_size=3, final_size=32, crop=True, flip=True, aus_noise=0.1, seed=7)


def _loader_batches(dataset, epoch, generator, rank=0, world_size=1):
    """What the trainer's DataLoader path yields: sampler batches, then ``prepare_batch`` with its generator."""
    sampler = EpochBatchSampler(len(dataset), 3, seed=7, epoch=epoch, rank=rank, world_size=world_size)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_batch)
    for images, aus, _ in loader:
        yield prepare_batch(images, aus, final_size=32, crop=True, flip=True, aus_noise=0.1, generator=generator)


@pytest.fixture
def dataset(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", n=16, size=40)
    return build_training_set(root, OPENFACE_17, load_size=36, cache="ram")[0]


def _assert_same_batches(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


@pytest.mark.parametrize("rank", [0, 1])
def test_device_batches_are_the_loader_batches_on_cpu(dataset, rank):
    # random crop, flip and AU noise all drawn: same generator, same order of draws, same tensors
    device = DeviceBatches(dataset.pixels, dataset.aus, torch.device("cpu"),
                           BatchSettings(**SETTINGS, rank=rank, world_size=2))
    assert device.batches_per_epoch() == 15 // 6
    _assert_same_batches(device.epoch(2, torch.Generator().manual_seed(1)),
                         _loader_batches(dataset, 2, torch.Generator().manual_seed(1), rank=rank, world_size=2))


def test_a_resumed_epoch_continues_the_same_batches(dataset):
    device = DeviceBatches(dataset.pixels, dataset.aus, torch.device("cpu"), BatchSettings(**SETTINGS))
    gen = torch.Generator().manual_seed(3)
    full = list(device.epoch(1, gen))
    assert len(full) == 5 and full[0]["src_img"].dtype == torch.float32
    gen = torch.Generator().manual_seed(3)
    it = device.epoch(1, gen)
    next(it), next(it)
    state = gen.get_state()  # what a checkpoint taken after two batches holds
    resumed = torch.Generator()
    resumed.set_state(state)
    _assert_same_batches(device.epoch(1, resumed, start_batch=2), full[2:])


def test_batches_have_the_training_layout(dataset):
    settings = BatchSettings(**{**SETTINGS, "crop": False, "final_size": 36}, channels_last=True)
    batch = next(DeviceBatches(dataset.pixels, dataset.aus, torch.device("cpu"), settings).epoch(1,
                                                                                                   torch.Generator()))
    assert batch["src_img"].shape == (3, 3, 36, 36) and batch["tar_aus"].shape == (3, 17)
    assert batch["src_img"].is_contiguous(memory_format=torch.channels_last)
    assert float(batch["src_img"].min()) >= -1 and float(batch["src_img"].max()) <= 1
    assert torch.equal(batch["tar_img"], batch["src_img"].roll(1, dims=0))
    assert float(batch["tar_aus"].min()) >= 0  # noisy targets are clamped at 0


def test_random_crop_is_a_per_image_window():
    images = torch.randint(0, 256, (5, 3, 40, 37), dtype=torch.uint8)
    crops = random_crop(images, 32, torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(4)
    tops, lefts = torch.randint(0, 9, (5,), generator=gen), torch.randint(0, 6, (5,), generator=gen)
    for img, crop, top, left in zip(images, crops, tops.tolist(), lefts.tolist()):
        assert torch.equal(crop, img[:, top:top + 32, left:left + 32])


def test_when_the_device_path_is_used(dataset):
    cpu = torch.device("cpu")
    assert not use_device_path("auto", dataset.pixels, cpu)  # CPU: the loader path stays the default
    assert use_device_path("on", dataset.pixels, cpu) and not use_device_path("off", dataset.pixels, cpu)
    assert not use_device_path("auto", None, cpu)
    with pytest.raises(ValueError, match="cache_images"):
        use_device_path("on", None, cpu)
    with pytest.raises(ValueError, match="data_on_device"):
        use_device_path("yes", dataset.pixels, cpu)


SCHEDULE = ["--batch_size", "4", "--niter", "2", "--niter_decay", "1", "--train_gen_iter", "2",
            "--print_losses_freq", "4", "--sample_img_freq", "0", "--resize_or_crop", "crop"]


def _train(data, ckpt_dir, name, *extra):
    return main(["--data_root", str(data), "--ckpt_dir", str(ckpt_dir), "--name", name, *TINY_MODEL, *SCHEDULE,
                 *extra])


@pytest.mark.slow
def test_device_path_trains_the_loader_path_weights_and_resumes_exactly(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n=12, size=40)
    assert _train(data, tmp_path, "loader", "--data_on_device", "off") == 0
    assert _train(data, tmp_path, "device", "--data_on_device", "on") == 0
    assert _train(data, tmp_path, "split", "--data_on_device", "on", "--max_steps", "3") == 0
    assert main(["--resume", str(tmp_path / "split"), "--no_progress", "--data_on_device", "on"]) == 0
    assert "data on cpu" in (tmp_path / "device" / "log.txt").read_text()
    states = {name: read(tmp_path / name / "epoch_0003.pth").state for name in ("loader", "device", "split")}
    for name in ("device", "split"):
        for net in ("G", "D", "optim_D"):
            a, b = states["loader"][net], states[name][net]
            a, b = (a["state"], b["state"]) if net.startswith("optim") else (a, b)
            for key in a:
                if isinstance(a[key], dict):
                    assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), (name, net, key)
                else:
                    assert torch.equal(a[key], b[key]), (name, net, key)
    assert states["split"]["rng"]["batch_generator_device"] == "cpu"


@pytest.mark.slow
def test_a_run_resumed_with_a_generator_on_another_device_reseeds(tmp_path):
    """A CUDA generator's state (device data path on a GPU) cannot continue on a CPU generator: the resumed run
    says so and reseeds instead of failing."""
    data = make_tiny_dataset(tmp_path / "d", n=12, size=40)
    assert _train(data, tmp_path, "r", "--max_steps", "1") == 0
    latest = tmp_path / "r" / "latest.pth"
    state = torch.load(latest, weights_only=True)
    assert state["rng"]["batch_generator_device"] == "cpu"
    state["rng"]["batch_generator_device"] = "cuda"
    state["rng"]["batch_generators"] = [torch.zeros(16, dtype=torch.uint8)]  # a Philox state's size
    torch.save(state, latest)
    assert main(["--resume", str(tmp_path / "r"), "--no_progress", "--max_steps", "2"]) == 0
    assert "checkpoint holds cuda batch generator states, this run draws on cpu: reseeding" in (
        tmp_path / "r" / "log.txt").read_text()
    assert read(latest).state["progress"]["step"] == 2
