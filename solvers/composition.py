"""Composition root: the one place that turns command-line flags into constructor keyword arguments
(``create_solver``). Its own module, so that importing a solver module does not run it."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

import torch.distributed as dist

from catalog.au_schema import SCHEMAS, schema_for_size
from catalog.datasets import DATASETS
from checkpoints import BUNDLED_CHECKPOINT, Checkpoint, read
from checkpoints.native import check_resumable
from media.signature import files_signature
from models import model_registry
from models.ganimation import LossWeights
from models.networks import default_d_layers
from monitor.logs import setup_logging
from solvers import fast_path
from solvers.distributed import init_from_env, local_rank_from_env, select_device
from solvers.run_folder import LockedRun, RunLock, new_run_dir

log = logging.getLogger(__name__)

# The rule on --resume (docs/robustness.md): architecture flags that differ from the run's are an error naming both
# values; any other flag that changes what the run computes (data flags above all) is logged as a warning; the
# flags below change nothing the run computes and are taken silently.
RESUME_SAFE = {"gpu_ids", "n_threads", "max_steps", "print_losses_freq", "sample_img_freq", "save_latest_freq",
               "save_epoch_freq", "keep_last", "visdom_display_id", "visdom_server", "visdom_port", "visdom_env",
               "tensorboard", "no_progress", "niter", "niter_decay"}
# Flags that shape the networks: the checkpoint's weights only fit the values it was trained with.
ARCHITECTURE = {"model", "ngf", "ndf", "n_blocks", "n_down", "norm", "d_layers", "final_size", "aus_schema", "aus_nc"}
# Flags about this invocation (machine, stopping point): taken from the current command line, never the checkpoint.
PER_INVOCATION = {"gpu_ids", "n_threads", "max_steps", "no_progress", "fast_path", "compile", "data_on_device",
                  "compile_mode"}
# Flags that only say which run to open; never taken from a checkpoint.
RUN_SELECTION = {"mode", "resume", "ckpt_dir", "load_epoch", "name", "explicit", "ckpt_format", "argv"}


def create_solver(opt: argparse.Namespace):
    if opt.mode == "train":
        return _create_trainer(opt)
    if opt.mode == "test" and opt.test_mode != "sequence":
        return create_n2me_pipeline(opt)
    if opt.mode == "test":
        return create_tester(opt)
    if opt.mode == "eval":
        return create_evaluation(opt)
    raise ValueError(f"unknown mode {opt.mode}")


def create_evaluation(opt: argparse.Namespace):
    from metrics.eval_flags import cache_folder
    from metrics.parallel import default_workers
    from solvers.evaluation import EvalSettings, Evaluation, eval_command

    if not opt.results:
        raise ValueError("--mode eval needs --results (a run folder, a batch folder, or a tree of results)")
    return Evaluation(EvalSettings(
        results=opt.results, sources=opt.sources, templates=opt.templates, out=opt.out, fps=opt.fps,
        annotations=opt.annotations, flow=opt.flow, report=not opt.no_report, inception=opt.inception,
        inception_device=opt.inception_device, workers=opt.workers or default_workers(),
        cache_dir=cache_folder(opt.cache_dir, opt.no_cache), identity_every=opt.identity_every,
        control=not opt.no_control, command=eval_command(opt)))


def resolve_schema(opt: argparse.Namespace):
    schema = SCHEMAS[opt.aus_schema]
    if opt.aus_nc is not None and opt.aus_nc != schema.n:
        if "aus_schema" in getattr(opt, "explicit", ()):
            raise ValueError(f"--aus_nc {opt.aus_nc} contradicts --aus_schema {schema.key} ({schema.n} AUs)")
        schema = schema_for_size(opt.aus_nc)
    return schema


def model_args_from_options(opt: argparse.Namespace) -> dict:
    schema = resolve_schema(opt)
    if opt.final_size % 4 or opt.final_size < 16:
        raise ValueError(f"--final_size {opt.final_size}: must be a multiple of 4 and at least 16 (128 or 256 usual)")
    return {
        "name": opt.model,
        "aus_schema": schema.key,
        "generator": generator_args(opt, schema.n),
        "discriminator": {"img_nc": 3, "aus_nc": schema.n, "final_size": opt.final_size, "ndf": opt.ndf,
                          "n_layers": opt.d_layers or default_d_layers(opt.final_size)},
    }


def generator_args(opt: argparse.Namespace, aus_nc: int) -> dict:
    """The registry names the flags each generator takes; only those reach its constructor."""
    flags = model_registry.spec(opt.model).generator_flags
    return {"img_nc": 3, "aus_nc": aus_nc, **{flag: getattr(opt, flag) for flag in flags}}


def loss_weights(opt: argparse.Namespace, model_name: str) -> LossWeights:
    self_rec = opt.lambda_self_rec
    if self_rec is None:
        self_rec = model_registry.spec(model_name).default_self_rec
    return LossWeights(dis=opt.lambda_dis, aus=opt.lambda_aus, rec=opt.lambda_rec, mask=opt.lambda_mask,
                       tv=opt.lambda_tv, wgan_gp=opt.lambda_wgan_gp, self_rec=self_rec)


def _merge_resumed_options(opt: argparse.Namespace, saved: dict) -> argparse.Namespace:
    """A resumed run computes what it computed before: saved options win, except flags typed now."""
    merged = {**vars(opt), **saved}  # flags newer than the checkpoint keep today's defaults
    changed = [k for k in opt.explicit if k not in RUN_SELECTION and merged.get(k) != getattr(opt, k)]
    arch = [f"--{k} {getattr(opt, k)} (the run has {merged.get(k)})" for k in changed if k in ARCHITECTURE]
    if arch:
        raise ValueError(f"cannot resume with another architecture: {'; '.join(arch)}. Drop the flag to continue "
                         f"the run, or fine-tune from it into a new run (--load_epoch N --name NEW)")
    for key in opt.explicit:
        if key in RUN_SELECTION:
            continue
        if key in changed and key not in RESUME_SAFE:
            log.warning("--%s changed on resume (%r -> %r): the continued run differs from an uninterrupted one",
                        key, merged.get(key), getattr(opt, key))
        merged[key] = getattr(opt, key)
    for key in RUN_SELECTION | PER_INVOCATION:
        merged[key] = getattr(opt, key, None)
    return argparse.Namespace(**merged)


def check_data_files(opt: argparse.Namespace, resumed: bool) -> str | None:
    """The training data's files (names, sizes, modification times under --data_root, and --aus_file), hashed and
    kept in the checkpoint's options; a resume compares them with the run's and says when they changed (a replaced
    image or AU table: the continued run would differ from an uninterrupted one, as with a changed data flag)."""
    root = Path(opt.data_root)
    if not root.is_dir():
        return None  # the data loader names the missing folder
    paths = [root] + ([Path(opt.aus_file)] if getattr(opt, "aus_file", None) else [])
    current = files_signature(paths)
    recorded = getattr(opt, "data_files", None)
    if resumed and recorded is not None and recorded != current:
        log.warning("the files under --data_root %s changed since the run saved its checkpoint (an image or AU table "
                    "replaced, added or removed): the continued run differs from an uninterrupted one", root)
    return current


def _adopt_architecture(opt: argparse.Namespace, model_args: dict) -> None:
    """Fine-tuning keeps the loaded network's image size and AU schema; say so if the flags asked otherwise."""
    implied = {"final_size": model_args["discriminator"]["final_size"], "aus_schema": model_args["aus_schema"]}
    for key, value in implied.items():
        if key in opt.explicit and getattr(opt, key) != value:
            log.warning("--%s %s ignored: the checkpoint was trained with %s", key, getattr(opt, key), value)
        setattr(opt, key, value)


def _agree(value, world_size: int):
    """Rank 0's value on every rank (run folder names contain a timestamp)."""
    if world_size <= 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _create_trainer(opt: argparse.Namespace):
    device = select_device(opt.gpu_ids, local_rank_from_env())
    dist_info = init_from_env(device)
    setup_logging(None, dist_info.is_main)
    init_from = resume_from = start_state = None  # the start checkpoint is read once, here, and handed over
    if opt.resume is not None:
        start = read(Path(opt.resume or opt.ckpt_dir), opt.load_epoch or "latest")  # native only: a run of ours
        resume_from, start_state = start.path, check_resumable(start.state, start.path)
        opt = _merge_resumed_options(opt, start_state["options"])
        run_dir, model_args = resume_from.parent, start_state["model"]
    elif opt.load_epoch is not None:
        # A seed's run folder (G + D files) is converted in memory; native files load as they are.
        start = read(Path(opt.ckpt_dir), opt.load_epoch, opt.ckpt_format, need_critic=True)
        init_from, start_state = start.path, start.state
        model_args = start_state["model"]  # the weights decide the architecture
        _adopt_architecture(opt, model_args)
        run_dir = new_run_dir(init_from.parent.parent, opt.name, opt.model) if dist_info.is_main else None
    else:
        model_args = model_args_from_options(opt)
        run_dir = new_run_dir(Path(opt.ckpt_dir), opt.name, opt.model) if dist_info.is_main else None
    run_dir = Path(_agree(str(run_dir), dist_info.world_size))
    if not opt.data_root:
        raise ValueError("--data_root is required for training")
    data_files = check_data_files(opt, resumed=resume_from is not None)

    cropping = opt.resize_or_crop != "none"
    load_size = opt.load_size or (round(opt.final_size * 1.15625) if cropping else opt.final_size)
    if load_size < opt.final_size:
        raise ValueError(f"--load_size {load_size} is smaller than --final_size {opt.final_size}")
    options = {k: v for k, v in vars(opt).items() if k not in ("explicit", "argv")}
    options["data_files"] = data_files
    lock = None
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir)  # one process per run folder; also clears temp files of killed processes
    try:
        if dist_info.is_main:
            setup_logging(run_dir, True)
            if resume_from is None:
                (run_dir / "options.json").write_text(json.dumps(options, indent=2, default=str) + "\n")
            with open(run_dir / "command.txt", "a") as fh:
                # the arguments parsed (main(argv) may differ from sys.argv), quoted so the line runs as it is
                fh.write(shlex.join([sys.executable, "main.py", *getattr(opt, "argv", sys.argv[1:])]) + "\n")
            log.info("run folder %s", run_dir)
        return LockedRun(_trainer(opt, device, dist_info, run_dir, model_args, load_size, cropping, options,
                                  init_from, resume_from, start_state), lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _trainer(opt, device, dist_info, run_dir, model_args, load_size, cropping, options, init_from, resume_from,
             start_state):
    from solvers.train_settings import DataSettings, OptimSettings, OutputSettings
    from solvers.trainer import Trainer

    path = speed_settings(opt, device)
    return Trainer(
        data=DataSettings(
            data_root=opt.data_root, imgs_dir=opt.imgs_dir, aus_file=opt.aus_file, batch_size=opt.batch_size,
            n_threads=opt.n_threads, serial_batches=opt.serial_batches, max_dataset_size=opt.max_dataset_size,
            final_size=opt.final_size, load_size=load_size if cropping else opt.final_size, random_crop=cropping,
            flip=not opt.no_flip, aus_noise=0.0 if opt.no_aus_noise else opt.aus_noise, skip_bad=opt.skip_bad,
            cache_images=opt.cache_images, clip_aus=opt.clip_aus, data_on_device=opt.data_on_device),
        optim=OptimSettings(
            lr=opt.lr, betas=(opt.beta1, opt.beta2), train_gen_iter=opt.train_gen_iter, epoch_count=opt.epoch_count,
            niter=opt.niter, niter_decay=opt.niter_decay, max_steps=opt.max_steps, amp=path.amp,
            channels_last=path.channels_last, compile=path.compile, fused_adam=path.fused_adam,
            cudnn_benchmark=path.cudnn_benchmark, compile_mode=opt.compile_mode),
        out=OutputSettings(
            run_dir=run_dir, save_epoch_freq=opt.save_epoch_freq, save_latest_freq=opt.save_latest_freq,
            keep_last=opt.keep_last, print_losses_freq=opt.print_losses_freq, sample_img_freq=opt.sample_img_freq,
            progress=not opt.no_progress, tensorboard=opt.tensorboard,
            visdom=({"server": opt.visdom_server, "port": opt.visdom_port, "env": opt.visdom_env,
                     "display_id": opt.visdom_display_id} if opt.visdom_display_id > 0 else None)),
        model_args=model_args,
        weights=loss_weights(opt, model_args["name"]),
        device=device, dist=dist_info, seed=opt.seed, options=options,
        init_from=init_from, resume_from=resume_from, start_state=start_state)


def trajectory_settings(opt: argparse.Namespace):
    from solvers.tester import TrajectorySettings

    if opt.linear_fitting and opt.apex_frame:
        raise ValueError("--linear_fitting and --apex_frame exclude each other")
    mode = "linear_fitting" if opt.linear_fitting else "apex_frame" if opt.apex_frame else "1v1"
    return TrajectorySettings(mode=mode, re_code=opt.re_code, apex=opt.top_frame, au_mode=opt.au_mode,
                              factor=opt.factor, smooth_window=opt.smooth,
                              calibrate=not getattr(opt, "no_calibration", False))


def generation_checkpoint(opt: argparse.Namespace) -> Checkpoint:
    """The checkpoint test mode generates with, read once (``--ckpt_format`` decides the format, default auto:
    native, or a seed's generator file imported in memory).

    Without --ckpt and without a typed --ckpt_dir, the bundled generator (``BUNDLED_CHECKPOINT``)."""
    typed_dir = "ckpt_dir" in opt.explicit  # main.py and for_megc2021.py both record the flags typed
    if opt.ckpt and "load_epoch" in opt.explicit and Path(opt.ckpt).is_file():
        raise ValueError(f"--ckpt {opt.ckpt} names one checkpoint file, so --load_epoch {opt.load_epoch} would be "
                         f"ignored: give --ckpt FILE alone, or --ckpt RUN_FOLDER --load_epoch N")
    if not opt.ckpt and not typed_dir:
        if not BUNDLED_CHECKPOINT.is_file():
            raise FileNotFoundError(f"no --ckpt or --ckpt_dir given, and the bundled model {BUNDLED_CHECKPOINT} is "
                                    f"missing: name a checkpoint (--ckpt FILE or --ckpt_dir RUN)")
        log.info("no --ckpt or --ckpt_dir given: using the bundled model %s (pretrained/MODEL_CARD.md)",
                 BUNDLED_CHECKPOINT)
        source = BUNDLED_CHECKPOINT
    else:
        source = Path(opt.ckpt or opt.ckpt_dir)
    return read(source, opt.load_epoch or "latest", opt.ckpt_format)


def preset_record(opt: argparse.Namespace) -> dict | None:
    """--preset as run.json records it: the name and the flags typed over it."""
    if not getattr(opt, "preset", None):
        return None
    return {"name": opt.preset, "overrides": dict(opt.preset_overrides)}


def write_videos(opt: argparse.Namespace) -> bool:
    """Videos are written by default; --no_video leaves them out. --save_video (ULME-GAN's spelling) asks for them
    explicitly, so typing both is a contradiction rather than a silent choice."""
    if getattr(opt, "save_video", False) and opt.no_video:
        raise ValueError("--save_video and --no_video contradict each other: give one of them")
    return not opt.no_video


def speed_settings(opt: argparse.Namespace, device) -> fast_path.FastPath:
    """--fast_path / --compile / --amp / --channels_last resolved for this device (see solvers/fast_path.py)."""
    path = fast_path.resolve(opt.fast_path, device, amp=opt.amp, channels_last=opt.channels_last,
                             compile_mode=opt.compile)
    if path != fast_path.PLAIN:  # the plain path is the default on CPU: nothing to report
        log.info("speed settings: %s", path.describe())
    return path


def create_tester(opt: argparse.Namespace):
    from solvers.tester import SequenceOutput, Tester

    setup_logging(None, True)
    device = select_device(opt.gpu_ids, 0)
    return Tester(
        checkpoint=generation_checkpoint(opt), device=device, results_dir=Path(opt.results_dir),
        traj=trajectory_settings(opt),
        out=SequenceOutput(output_size=opt.output_size, fps=opt.fps, videos=write_videos(opt),
                           max_frames=opt.max_dataset_size, preset=preset_record(opt)),
        data_root=Path(opt.data_root) if opt.data_root else None,
        aus_matrix=Path(opt.aus_matrix) if opt.aus_matrix else None, template=opt.template,
        batch_size=opt.batch_size, amp=opt.amp, speed=speed_settings(opt, device), progress=not opt.no_progress,
        au_backend=opt.au_backend if opt.pre_treatment else "table", openface_bin=opt.openface_bin,
        clip_aus=opt.clip_aus, motion=motion_settings(opt))


def motion_settings(opt: argparse.Namespace):
    """--motion / --texture / --skin_flow. --texture only changes motion transfer (with --motion none the generator's
    output is the frame) and --skin_flow needs a clip: typed where they do nothing, they are errors."""
    from solvers.motion_path import MotionSettings

    motion, texture = getattr(opt, "motion", "auto"), getattr(opt, "texture", "auto")
    explicit = set(getattr(opt, "explicit", ()))
    if motion == "none" and "texture" in explicit:
        raise ValueError("--texture applies to motion transfer only; with --motion none the generator's output is "
                         "the frame: drop --texture or choose --motion clip/aus/auto")
    skin_flow = getattr(opt, "skin_flow", "off") == "on"
    if motion in ("aus", "none") and "skin_flow" in explicit:
        raise ValueError(f"--skin_flow applies to --motion clip/auto (a driving clip's optical flow); with --motion "
                         f"{motion} there is no clip to take it from: drop --skin_flow")
    return MotionSettings(motion=motion, texture=texture, skin_flow=skin_flow)


def create_n2me_pipeline(opt: argparse.Namespace):
    from solvers.n2me_pipeline import N2MEPipeline, N2MESettings

    setup_logging(None, True)
    if not opt.test_dir or not opt.input_dir or not opt.neutral_ckpt:
        raise ValueError("--test_mode neutral/me/all needs --test_dir, --input_dir and --neutral_ckpt")
    test_dir = Path(opt.test_dir)
    neutral = read(Path(opt.neutral_ckpt), opt.load_epoch or "latest", opt.ckpt_format)
    me = read(Path(opt.me_ckpt), opt.load_epoch or "latest", opt.ckpt_format) if opt.me_ckpt else None
    aus_dirs = {d.key: Path(getattr(opt, d.aus_dir_flag)) for d in DATASETS.values() if getattr(opt, d.aus_dir_flag)}
    settings = N2MESettings(
        test_dir=test_dir, input_dir=test_dir / opt.input_dir, mode=opt.test_mode, neutral_ckpt=neutral,
        neutral_expr_name=opt.neutral_expr_name or neutral.path.parent.name, me_ckpt=me,
        me_expr_name=opt.me_expr_name or (me.path.parent.name if me else "me"), keep_size=opt.keep_size,
        aus_dirs=aus_dirs, me_summary=Path(opt.me_summary) if opt.me_summary else None,
        me_annotations=[Path(p) for p in opt.me_annotations], me_emotions=opt.me_emotions,
        me_samples=opt.me_samples, seed=opt.seed, fps=opt.fps, videos=write_videos(opt),
        motion=motion_settings(opt))
    device = select_device(opt.gpu_ids, 0)
    return N2MEPipeline(settings, device, batch_size=opt.batch_size, amp=opt.amp, speed=speed_settings(opt, device))
