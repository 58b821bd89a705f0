"""The training loop: critic every step, generator every ``train_gen_iter`` steps, checkpoints, logs, samples.

The trainer owns devices, precision, DDP wrapping, optimisers, the learning-rate schedule and every cadence;
``models/ganimation.py`` owns the maths. Read ``run`` -> ``_train_epoch`` -> ``_train_step`` top to bottom.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shlex
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from catalog.au_schema import SCHEMAS
from checkpoints import native, read
from data.augment import prepare_batch
from data.dataset import build_training_set, collate_batch
from data.device_batches import BatchSettings, DeviceBatches, to_layout, use_device_path
from data.sampler import EpochBatchSampler
from media.images import BadImageError
from models.ganimation import LossWeights, sample_visuals
from models.model_registry import build_networks, conditioning
from models.networks import init_weights
from monitor.dashboards import Dashboard, MultiDashboard, TensorBoardDashboard, VisdomDashboard
from monitor.logs import StatsWriter
from monitor.visuals import sample_grid, save_png
from solvers.distributed import DistInfo, barrier, check_ranks_agree, gather_objects
from solvers.fast_path import adam, apply_backend_settings
from solvers.train_settings import DataSettings, OptimSettings, OutputSettings, Progress, crossed, lr_factor
from solvers.train_step import LossMeter, TrainStep

log = logging.getLogger(__name__)

ATTENTION_SATURATION = 0.03  # warn when the mean mask is within this of 0 or 1
STOP_CHECK_EVERY = 10  # steps between DDP agreements on a stop request (a collective costs a sync)


@dataclass
class Trainer:
    data: DataSettings
    optim: OptimSettings
    out: OutputSettings
    model_args: dict
    weights: LossWeights
    device: torch.device
    dist: DistInfo = field(default_factory=DistInfo)
    seed: int = 2021
    options: dict = field(default_factory=dict)  # resolved options, stored in checkpoints
    init_from: Path | None = None  # fine-tuning: weights to start from
    resume_from: Path | None = None  # resume: full state to continue
    start_state: dict | None = None  # the checkpoint of init_from / resume_from, already read by the caller

    # ---------------------------------------------------------------- set-up
    def _setup(self) -> None:
        torch.manual_seed(self.seed)  # same initial weights on every rank
        self.schema = SCHEMAS[self.model_args["aus_schema"]]
        self.dataset, self.split = build_training_set(
            self.data.data_root, self.schema, imgs_dir=self.data.imgs_dir, aus_file=self.data.aus_file,
            load_size=self.data.load_size, max_dataset_size=self.data.max_dataset_size,
            skip_bad=self.data.skip_bad, cache=self.data.cache_images, workers=self.data.n_threads,
            clip_aus=self.data.clip_aus)
        per_epoch = len(self.dataset) // (self.data.batch_size * self.dist.world_size)
        if per_epoch == 0:
            raise ValueError(f"{len(self.dataset)} training images cannot fill one batch of {self.data.batch_size} "
                             f"x {self.dist.world_size} process(es): lower --batch_size")
        self.G, self.D = build_networks(self.model_args)
        self.condition = conditioning(self.model_args)
        init_weights(self.G)
        init_weights(self.D)
        self.progress = Progress(epoch=self.optim.epoch_count)
        if self.init_from is not None:
            self._load_weights(self.init_from)
        fmt = torch.channels_last if self.optim.channels_last else torch.preserve_format
        self.G.to(self.device, memory_format=fmt)
        self.D.to(self.device, memory_format=fmt)
        speed = self.optim.speed()
        self.opt_G = adam(self.G.parameters(), self.optim.lr, self.optim.betas, speed)
        self.opt_D = adam(self.D.parameters(), self.optim.lr, self.optim.betas, speed)
        self.device_data = self._device_batches()
        # All per-step randomness; on the training device when the data is, so a batch needs no host work.
        gen_device = self.device if self.device_data is not None else torch.device("cpu")
        self.gen = torch.Generator(device=gen_device).manual_seed(self.seed + 1_000 * self.dist.rank)
        if self.resume_from is not None:
            self._restore(self.resume_from)
        apply_backend_settings(speed)
        # DDP wraps the networks for gradient steps only; saving, samples and the penalty use the plain modules.
        self.step = TrainStep(self.G, self.D, self.opt_G, self.opt_D, weights=self.weights, condition=self.condition,
                              path=speed, device=self.device, G_train=DDP(self.G) if self.dist.enabled else None,
                              D_train=DDP(self.D) if self.dist.enabled else None,
                              compile_mode=self.optim.compile_mode)
        self._stop_requested = False
        self.meter = LossMeter()
        self._warned_attention = False
        if self.dist.is_main:
            self._open_outputs()

    def _device_batches(self) -> DeviceBatches | None:
        """The device data path (``--data_on_device``), or None for the DataLoader path."""
        if not use_device_path(self.data.data_on_device, self.dataset.pixels, self.device):
            return None
        log.info("data on %s: %d decoded images (%.0f MB), batches drawn by index", self.device, len(self.dataset),
                 self.dataset.pixels.numel() / 1e6)
        d = self.data
        settings = BatchSettings(batch_size=d.batch_size, final_size=d.final_size, crop=d.random_crop, flip=d.flip,
                                 aus_noise=d.aus_noise, seed=self.seed, shuffle=not d.serial_batches,
                                 rank=self.dist.rank, world_size=self.dist.world_size,
                                 channels_last=self.optim.channels_last)
        return DeviceBatches(self.dataset.pixels, self.dataset.aus, self.device, settings)

    def _open_outputs(self) -> None:
        run = self.out.run_dir
        (run / "samples").mkdir(parents=True, exist_ok=True)
        self.stats = StatsWriter(run / "stats.jsonl",
                                 resume_step=self.progress.step if self.resume_from is not None else None)
        if self.split.id_source == "deterministic split":
            (run / "train_ids.txt").write_text("".join(n + "\n" for n in self.split.train))
            (run / "test_ids.txt").write_text("".join(n + "\n" for n in self.split.test))
        boards: list[Dashboard] = []
        if self.out.visdom is not None:
            boards.append(VisdomDashboard(**self.out.visdom))
        if self.out.tensorboard:
            boards.append(TensorBoardDashboard(str(run / "tb")))
        self.board = MultiDashboard(boards)

    def _start_state(self, path: Path) -> dict:
        """The start checkpoint the caller read (read here only when none was given); not kept for the run."""
        state, self.start_state = self.start_state, None
        return state if state is not None else read(path).state

    def _load_weights(self, path: Path) -> None:
        state = self._start_state(path)
        native.load_state_strict(self.G, state["G"], "generator", path)
        native.load_state_strict(self.D, state["D"], "critic", path)
        log.info("fine-tuning from %s (epoch %s, step %s)", path, state["progress"]["epoch"],
                 state["progress"]["step"])

    def _restore(self, path: Path) -> None:
        state = self._start_state(path)
        native.load_state_strict(self.G, state["G"], "generator", path)
        native.load_state_strict(self.D, state["D"], "critic", path)
        self.opt_G.load_state_dict(state["optim_G"])
        self.opt_D.load_state_dict(state["optim_D"])
        self.progress = Progress(**state["progress"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        gens = rng["batch_generators"]
        # CPU (loader path) and CUDA (device data path) generators have different states: a run resumed on the
        # other path reseeds, like a run resumed with another number of ranks.
        if rng.get("batch_generator_device", "cpu") != self.gen.device.type:
            log.warning("checkpoint holds %s batch generator states, this run draws on %s: reseeding",
                        rng.get("batch_generator_device", "cpu"), self.gen.device.type)
            self.gen.manual_seed(self.seed + 1_000 * self.dist.rank + self.progress.step)
        elif self.dist.rank < len(gens):
            self.gen.set_state(gens[self.dist.rank])
        else:  # saved by a different number of ranks: reseed this rank deterministically
            log.warning("checkpoint holds RNG states of %d rank(s); rank %d reseeds", len(gens), self.dist.rank)
            self.gen.manual_seed(self.seed + 1_000 * self.dist.rank + self.progress.step)
        if self.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        log.info("resuming %s at epoch %d, batch %d, step %d", path, self.progress.epoch, self.progress.batch,
                 self.progress.step)

    # ---------------------------------------------------------------- main loop
    def run(self) -> Path | None:
        self._setup()
        last_epoch = self.optim.niter + self.optim.niter_decay
        per_epoch = len(self.dataset) // (self.data.batch_size * self.dist.world_size)
        if self.progress.batch >= per_epoch:  # checkpoint taken at an epoch's end
            self.progress.epoch, self.progress.batch = self.progress.epoch + 1, 0
        log.info("training %d images, %d batches/epoch, epochs %d..%d, device %s, world size %d",
                 len(self.dataset), per_epoch, self.progress.epoch, last_epoch, self.device, self.dist.world_size)
        saved = None
        self.interrupted = False
        with self._stop_on_signals():
            while self.progress.epoch <= last_epoch:
                finished = self._train_epoch(per_epoch)
                if not finished:  # max_steps reached, or a stop was requested
                    saved = self._save(latest=True)
                    self.interrupted = self._stop_requested
                    log.info("stopped at step %d; continue with --resume %s", self.progress.step,
                             shlex.quote(str(self.out.run_dir)))
                    break
                if self.progress.epoch % self.out.save_epoch_freq == 0 or self.progress.epoch == last_epoch:
                    saved = self._save(latest=False)
                self.progress.epoch, self.progress.batch = self.progress.epoch + 1, 0
        if self.dist.is_main:
            self.board.close()
        return saved

    def _train_epoch(self, per_epoch: int) -> bool:
        """Train the rest of the current epoch; False if it stopped early."""
        epoch = self.progress.epoch
        lr = self.optim.lr * lr_factor(epoch, self.optim.niter, self.optim.niter_decay)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        bar = tqdm(total=per_epoch, initial=self.progress.batch, desc=f"epoch {epoch}", unit="batch",
                   disable=not (self.out.progress and self.dist.is_main), dynamic_ncols=True, leave=False)
        try:
            for batch in self._batches(epoch):
                self._train_step(batch)
                self._after_step(batch, lr, bar)
                if self._should_stop():
                    return False
        except BadImageError:
            if not self.dist.enabled:  # saving is collective under DDP; the other ranks are not here
                log.error("an image failed to load mid-run; saving a resumable checkpoint before stopping")
                self._save(latest=True)
            raise
        finally:
            bar.close()
        return True

    def _batches(self, epoch: int):
        """This epoch's remaining batches, from the device data path or the DataLoader."""
        if self.device_data is not None:
            yield from self.device_data.epoch(epoch, self.gen, start_batch=self.progress.batch)
            return
        for images, aus, _ in self._loader(epoch):
            yield self._to_batch(images, aus)

    def _loader(self, epoch: int) -> DataLoader:
        sampler = EpochBatchSampler(len(self.dataset), self.data.batch_size, seed=self.seed, epoch=epoch,
                                    shuffle=not self.data.serial_batches, rank=self.dist.rank,
                                    world_size=self.dist.world_size, start_batch=self.progress.batch)
        # Cached images are one gather away: worker processes would only add copies.
        workers = 0 if self.dataset.pixels is not None else self.data.n_threads
        # Its own generator: otherwise every new loader iterator draws a worker seed from the global RNG, and a
        # resumed run (which opens one more iterator) would drift from an uninterrupted one.
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate_batch,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(epoch))

    def _to_batch(self, images: torch.Tensor, aus: torch.Tensor) -> dict:
        images = images.to(self.device, non_blocking=True)
        aus = aus.to(self.device, non_blocking=True)
        batch = prepare_batch(images, aus, final_size=self.data.final_size, crop=self.data.random_crop,
                              flip=self.data.flip, aus_noise=self.data.aus_noise, generator=self.gen)
        return to_layout(batch, self.optim.channels_last)

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.optim.amp)

    def _train_step(self, batch: dict) -> None:
        # Loss terms stay on the device (LossMeter); they are read back only when logging, so steps never wait.
        self.meter.add(self.step.critic(batch, self.gen))
        if (self.progress.step + 1) % self.optim.train_gen_iter == 0:
            self.meter.add(self.step.generator(batch))

    # ---------------------------------------------------------------- cadence
    def _after_step(self, batch: dict, lr: float, bar: tqdm) -> None:
        before = self.progress.images
        self.progress.step += 1
        self.progress.batch += 1
        self.progress.images += batch["src_img"].shape[0] * self.dist.world_size
        after = self.progress.images
        bar.update(1)
        if crossed(before, after, self.out.print_losses_freq):
            self._log_losses(lr, bar)
        if crossed(before, after, self.out.sample_img_freq) and self.dist.is_main:
            self._save_samples(batch)
        if self.out.save_latest_freq and self.progress.step % self.out.save_latest_freq == 0:
            self._save(latest=True)

    def _log_losses(self, lr: float, bar: tqdm) -> None:
        if not self.dist.is_main:
            self.meter.reset()
            return
        means = self.meter.means()
        now = time.perf_counter()
        last = getattr(self, "_last_log", None)
        record = {"step": self.progress.step, "epoch": self.progress.epoch, "images": self.progress.images,
                  "lr": lr, **{k: round(v, 6) for k, v in means.items()}}
        if last is not None:
            record["images_per_s"] = round((self.progress.images - last[1]) / max(now - last[0], 1e-9), 2)
        self._last_log = (now, self.progress.images)
        self.stats.write(record)
        self.board.scalars(self.progress.step, {k: v for k, v in means.items()})
        bar.set_postfix({k.split("/")[1]: f"{v:.3g}" for k, v in means.items() if k in ("D/total", "G/total", "G/aus")})
        log.info("epoch %d step %d images %d lr %.2e | %s", self.progress.epoch, self.progress.step,
                 self.progress.images, lr, " ".join(f"{k} {v:.4g}" for k, v in means.items()))
        self._check_attention(means.get("G/attention_mean"))

    def _check_attention(self, mean: float | None) -> None:
        if mean is None:
            return
        saturated = mean < ATTENTION_SATURATION or mean > 1 - ATTENTION_SATURATION
        if saturated and not self._warned_attention:
            side = "1 (output = input, AU condition ignored)" if mean > 0.5 else "0 (whole face repainted)"
            log.warning("attention mask mean %.3f is saturating towards %s; consider --lambda_mask/--lambda_tv > 0",
                        mean, side)
        self._warned_attention = saturated

    def _save_samples(self, batch: dict) -> None:
        self.G.eval()  # InstanceNorm without running stats: eval only matters for future layers
        with self._autocast():
            visuals = sample_visuals(self.G, batch, condition=self.condition)
        self.G.train()
        grid = sample_grid(visuals)
        save_png(grid, self.out.run_dir / "samples" / f"step_{self.progress.step:08d}.png")
        self.board.images(self.progress.step, "samples", grid)

    # ---------------------------------------------------------------- stopping and saving
    @contextlib.contextmanager
    def _stop_on_signals(self):
        """First Ctrl-C (or SIGTERM) finishes the current step and saves a resumable checkpoint; a second one
        aborts at once."""
        def request_stop(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            log.warning("stop requested: finishing this step and saving a resumable checkpoint (again to abort)")

        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in previous:
                signal.signal(s, request_stop)
        except ValueError:  # not the main thread: leave signals alone
            previous = {}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _should_stop(self) -> bool:
        if self.optim.max_steps is not None and self.progress.step >= self.optim.max_steps:
            return True
        if not self.dist.enabled:
            return self._stop_requested
        if self.progress.step % STOP_CHECK_EVERY:
            return False
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)  # every rank stops at the same step
        return bool(flag.item())

    def _save(self, latest: bool) -> Path | None:
        """Collective in DDP (RNG states of all ranks are gathered); only the main rank writes."""
        generators = gather_objects(self.gen.get_state(), self.dist)
        check_ranks_agree((self.G, self.D), self.dist, self.progress.step)
        if not self.dist.is_main:
            barrier(self.dist)
            return None
        state = {
            "kind": native.KIND, "format_version": native.FORMAT_VERSION,
            "progress": asdict(self.progress),
            "lr": self.opt_G.param_groups[0]["lr"],
            "model": self.model_args,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "optim_G": self.opt_G.state_dict(), "optim_D": self.opt_D.state_dict(),
            "options": json.loads(json.dumps(self.options, default=str)),
            "rng": {"torch": torch.get_rng_state(), "batch_generators": generators,
                    "batch_generator_device": self.gen.device.type,
                    "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
        }
        path = self.out.run_dir / native.LATEST if latest else native.epoch_path(self.out.run_dir, self.progress.epoch)
        native.save_atomic(state, path)
        if not latest:
            (self.out.run_dir / native.LATEST).unlink(missing_ok=True)  # older than this epoch checkpoint now
            native.prune_epochs(self.out.run_dir, self.out.keep_last)
        log.info("saved %s", path)
        barrier(self.dist)
        return path

