"""Command-line flags, grouped by owner. Parsing only: no folders created, no devices touched.

Flag names follow ULME-GAN / ganimation_replicate so their users' commands keep working.
"""
from __future__ import annotations

import argparse
import math
import sys

from catalog.au_schema import SCHEMAS
from catalog.datasets import DATASETS, DEFAULT_FPS, fps_summary
from checkpoints.seed_formats import FORMATS as CHECKPOINT_FORMATS
from metrics.eval_flags import add_eval_flags, parse_fps
from models.model_registry import MODELS
from options.presets import PRESETS

MODES = ("train", "test", "eval")
NORMS = ("instance", "instance_affine")


# Numbers are checked while parsing, so a bad value stops the command before anything is loaded or written.
def _number(kind, low=None, high=None, what=""):
    def parse_value(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f">= {low:g}" if high is None else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"{text}: must be {bounds}{what}")
        return value
    parse_value.__name__ = kind.__name__  # argparse names the type in its messages
    return parse_value


def gpu_list(text: str) -> str:
    """--gpu_ids: -1 (CPU) or a comma list of GPU numbers (0 or 0,1), checked here; kept as typed."""
    parts = [x for x in text.replace(" ", "").split(",") if x]
    if not parts or not all(x.lstrip("-").isdigit() and int(x) >= -1 for x in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give -1 for the CPU, or GPU numbers such as 0 or 0,1")
    return text


gpu_list.__name__ = "GPU list"  # argparse names the type in its messages
POSITIVE_INT = _number(int, 1)
NON_NEGATIVE_INT = _number(int, 0)
NON_NEGATIVE = _number(float, 0)
FPS = parse_fps  # one rule for test and eval mode, and for python -m metrics.evaluate


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data_root", help="folder with imgs/, an AU table (aus_openface.pkl | aus.pkl | aus.csv | "
                   "aus.json) and optional train_ids.csv/.txt, test_ids.csv/.txt")
    g.add_argument("--imgs_dir", default="imgs", help="image sub-folder of --data_root")
    g.add_argument("--aus_file", default=None, help="AU table path (None: found in --data_root)")
    g.add_argument("--aus_schema", default="openface17", choices=sorted(SCHEMAS),
                   help="AU vector layout: 17 OpenFace AUs, or 18 with N2ME's mouth-opening value")
    g.add_argument("--aus_nc", type=int, default=None, help="number of AUs; follows --aus_schema (checked if given)")
    g.add_argument("--batch_size", type=POSITIVE_INT, default=25, help="images per step per process")
    g.add_argument("--n_threads", type=NON_NEGATIVE_INT, default=4, help="loader worker processes / decoding threads")
    g.add_argument("--serial_batches", action="store_true", help="take images in order instead of shuffling")
    g.add_argument("--max_dataset_size", type=POSITIVE_INT, default=None, help="use at most this many training images")
    g.add_argument("--final_size", type=POSITIVE_INT, default=128, help="network image size (128 or 256)")
    g.add_argument("--load_size", type=POSITIVE_INT, default=None,
                   help="decode size before cropping (None: final_size, or final_size*1.16 when cropping)")
    g.add_argument("--resize_or_crop", default="none", choices=("none", "resize_and_crop", "crop"),
                   help="none: resize to final_size; resize_and_crop/crop: decode at load_size, random crop")
    g.add_argument("--no_flip", action="store_true", help="no horizontal flip augmentation")
    g.add_argument("--no_aus_noise", action="store_true", help="no U(-aus_noise, aus_noise) on target AUs")
    g.add_argument("--aus_noise", type=NON_NEGATIVE, default=0.1, help="target AU jitter on the [0, 1] scale")
    g.add_argument("--skip_bad", action="store_true", help="leave unreadable images out (reported) instead of stopping")
    g.add_argument("--clip_aus", action="store_true",
                   help="clip AU values outside the schema's 0..5 to that range (count logged) instead of stopping")
    g.add_argument("--cache_images", default="auto", choices=("auto", "ram", "stream", "off"),
                   help="auto: keep decoded images in RAM when under 4 GiB; stream: decode per step; "
                        "off: also skip the up-front check that every image decodes")
    g.add_argument("--data_on_device", default="auto", choices=("auto", "on", "off"),
                   help="keep the decoded images on the training device and draw batches there (no loader, no "
                        "per-step host work); auto: on for CUDA when they fit, off on CPU")


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--preset", default=None, choices=tuple(PRESETS),
                   help="a seed's published settings for --mode train or test (options/presets.py names the source "
                        "of each value); flags typed override them: "
                        + "; ".join(f"{name}: {preset.help}" for name, preset in PRESETS.items()))
    g.add_argument("--model", default="ganimation", choices=tuple(MODELS),  # the registry is the one model list
                   help="; ".join(f"{name}: {spec.help}" for name, spec in MODELS.items()))
    g.add_argument("--ngf", type=POSITIVE_INT, default=64, help="generator base width")
    g.add_argument("--n_down", type=POSITIVE_INT, default=3, help="n2me_unet: U-Net downsamplings")
    g.add_argument("--ndf", type=POSITIVE_INT, default=64, help="critic base width")
    g.add_argument("--n_blocks", type=NON_NEGATIVE_INT, default=6, help="generator residual blocks")
    g.add_argument("--norm", default="instance", choices=NORMS,
                   help="instance: no affine, conv bias (ULME/replicate; N2ME's bias-free convs import exactly); "
                        "instance_affine: affine, no conv bias (original GANimation)")
    g.add_argument("--d_layers", type=NON_NEGATIVE_INT, default=0, help="critic downsamplings (0: 6 at >=128 px)")


def add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--gpu_ids", type=gpu_list, default="0", help="e.g. 0 or 0,1; -1 for CPU (no GPU also means CPU)")
    g.add_argument("--ckpt_dir", default="./ckpts",
                   help="where run folders are made; with --load_epoch or --resume: the run folder to load from")
    g.add_argument("--name", default=None, help="run folder name (None: <model>_<YYMMDD_HHMMSS>)")
    g.add_argument("--load_epoch", default=None,
                   help="N or latest: in train mode, fine-tune from that checkpoint of --ckpt_dir")
    g.add_argument("--ckpt_format", default="auto",
                   choices=CHECKPOINT_FORMATS,
                   help="format of --ckpt / --ckpt_dir (test mode and --load_epoch fine-tuning): auto detects this "
                        "toolkit's checkpoints or a seed's (ULME-GAN/replicate <E>_net_gen.pth, GANimation "
                        "net_epoch_<E>_id_G.pth, N2ME net_epoch_<E>_G.pth) from key and file names")
    g.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run exactly (RUN_DIR defaults to --ckpt_dir)")
    g.add_argument("--epoch_count", type=POSITIVE_INT, default=1, help="number of the first epoch (fine-tuning)")
    g.add_argument("--niter", type=NON_NEGATIVE_INT, default=20, help="last epoch at the initial learning rate")
    g.add_argument("--niter_decay", type=NON_NEGATIVE_INT, default=10, help="epochs of linear decay after --niter")
    g.add_argument("--max_steps", type=POSITIVE_INT, default=None,
                   help="stop after this many steps (resumable checkpoint)")
    g.add_argument("--lr", type=NON_NEGATIVE, default=1e-4)
    g.add_argument("--beta1", type=float, default=0.5)
    g.add_argument("--beta2", type=float, default=0.999)
    g.add_argument("--lambda_dis", type=float, default=1.0, help="adversarial (critic score) weight")
    g.add_argument("--lambda_aus", type=float, default=160.0, help="AU regression weight (batch-mean MSE)")
    g.add_argument("--lambda_rec", type=float, default=10.0, help="cycle reconstruction L1 weight")
    g.add_argument("--lambda_mask", type=float, default=0.1, help="attention mean weight (ULME used 0)")
    g.add_argument("--lambda_tv", type=float, default=1e-5, help="attention total-variation weight (ULME used 0)")
    g.add_argument("--lambda_wgan_gp", type=float, default=10.0, help="gradient penalty weight")
    g.add_argument("--lambda_self_rec", type=float, default=None,
                   help="self-reconstruction G(x, own AUs) = x weight (None: the model's default: "
                        + ", ".join(f"{spec.default_self_rec:g} for {name}" for name, spec in MODELS.items()) + ")")
    g.add_argument("--train_gen_iter", type=POSITIVE_INT, default=5, help="one generator step every N critic steps")
    g.add_argument("--seed", "--lucky_seed", dest="seed", type=int, default=2021, help="random seed (rank folded in)")
    g.add_argument("--fast_path", default="auto", choices=("auto", "on", "off"),
                   help="on: bf16 autocast + channels_last + torch.compile + fused Adam + cudnn.benchmark; "
                        "auto: on for CUDA, off on CPU; off: the plain fp32 eager reference path")
    g.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                   help="torch.compile of G and D: auto follows --fast_path")
    g.add_argument("--compile_mode", default="default", choices=("default", "reduce-overhead", "max-autotune"),
                   help="torch.compile mode of the training step when compiled (reduce-overhead: CUDA graphs)")
    g.add_argument("--amp", action="store_true", help="bf16 autocast (also part of --fast_path on)")
    g.add_argument("--channels_last", action="store_true",
                   help="NHWC memory layout, faster convolutions on GPU (also part of --fast_path on)")
    g.add_argument("--save_epoch_freq", type=POSITIVE_INT, default=1, help="save a checkpoint every N epochs")
    g.add_argument("--save_latest_freq", type=NON_NEGATIVE_INT, default=0,
                   help="also save latest.pth every N steps inside an epoch (0: only on stop/interrupt)")
    g.add_argument("--keep_last", type=NON_NEGATIVE_INT, default=0,
                   help="keep only the newest K epoch checkpoints (0: all)")


def add_logging_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("logging")
    g.add_argument("--print_losses_freq", type=POSITIVE_INT, default=1000, help="log losses every N images")
    g.add_argument("--sample_img_freq", type=NON_NEGATIVE_INT, default=5000,
                   help="save a sample grid every N images (0: never)")
    g.add_argument("--visdom_display_id", type=int, default=0, help=">0: send losses and samples to visdom")
    g.add_argument("--visdom_server", default="http://localhost")
    g.add_argument("--visdom_port", type=int, default=8097)
    g.add_argument("--visdom_env", default="main")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events to RUN/tb")
    g.add_argument("--no_progress", action="store_true", help="no tqdm bars")


def add_test_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("test (sequence generation)")
    g.add_argument("--ckpt", default=None, help="checkpoint file (instead of --ckpt_dir RUN --load_epoch N|latest)")
    g.add_argument("--results_dir", default="./results", help="where result folders are created")
    g.add_argument("--aus_matrix", default=None,
                   help="CSV (header of AU names, one row per frame) or JSON list of AU vectors driving the "
                        "template without source frames")
    g.add_argument("--template", default=None, help="template name in imgs2/ (several present), or an image path")
    g.add_argument("--re_code", action="store_true",
                   help="zero AUs whose OpenFace presence flag is on in under half of the clip's frames")
    g.add_argument("--linear_fitting", action="store_true", help="onset -> apex -> offset piecewise-linear AUs")
    g.add_argument("--apex_frame", action="store_true", help="template AUs -> apex AUs -> template AUs")
    g.add_argument("--top_frame", type=NON_NEGATIVE_INT, default=None,
                   help="apex frame index (default: largest AU sum)")
    g.add_argument("--factor", type=NON_NEGATIVE, default=1.0, help="multiply the target AUs (magnification)")
    g.add_argument("--au_mode", default="auto", choices=("auto", "absolute", "relative"),
                   help="relative: template AUs + (frame AUs - onset AUs), so the clip's identity offsets stay out; "
                        "absolute: the clip's AUs as they are (the seeds); auto: relative when the template's AUs "
                        "are known, else absolute (docs/bundled_model.md has the numbers behind this default)")
    g.add_argument("--smooth", type=NON_NEGATIVE_INT, default=0,
                   help="moving-average window over the AU curves (frames)")
    g.add_argument("--no_calibration", action="store_true",
                   help="drive the raw target AUs, ignoring the model's <model>.calibration.json (as the seeds do)")
    g.add_argument("--motion", default="auto", choices=("auto", "clip", "aus", "none"),
                   help="how the face moves (docs/motion.md): clip = the driving clip's landmark motion warped onto "
                        "the template; aus = per-AU motion primitives driven by the AU trajectory; none = the "
                        "generator alone, as ULME-GAN and N2ME do; auto (default) = clip when there are source "
                        "frames, else aus")
    g.add_argument("--texture", default="auto", choices=("auto", "clip", "generator", "none"),
                   help="with --motion clip/aus, what changes besides the motion (auto: clip with a clip's motion, "
                        "none with the AU path; measured in docs/motion.md): clip = the driving clip's own "
                        "shading and furrows (its brightness ratio to the onset, carried through the mesh); generator "
                        "= the generator's AU-driven change (frame AUs minus onset AUs); none = the warp alone")
    g.add_argument("--skin_flow", default="off", choices=("on", "off"),
                   help="with --motion clip: also transfer the clip's dense optical flow beyond its landmarks' motion "
                        "(the skin between landmarks; docs/motion.md has the measurement behind the default)")
    g.add_argument("--output_size", type=int, default=256, choices=(128, 256), help="size of written frames")
    g.add_argument("--fps", type=FPS, default=None,
                   help=f"video frame rate (default: the dataset's native rate: {fps_summary()}; else {DEFAULT_FPS}); "
                        "--mode eval: the clips' frame rate (default: run.json, else dataset)")
    g.add_argument("--no_video", action="store_true", help="frames, AU table and curves only")
    g.add_argument("--save_video", action="store_true",
                   help="write the videos (the default; ULME-GAN's flag); contradicts --no_video")
    g.add_argument("--pre_treatment", action="store_true",
                   help="measure the AUs of imgs/ and imgs2/ (and align the template) instead of reading tables")
    g.add_argument("--au_backend", default="auto", choices=("auto", "builtin", "openface", "csv"),
                   help="with --pre_treatment: auto = openface when it is installed, else builtin; builtin = offline "
                        "MediaPipe front end; openface = run a real OpenFace (--openface_bin or $OPENFACE_BIN); "
                        "csv = the OpenFace CSVs already in csvs/, csvs2/")
    g.add_argument("--openface_bin", default=None, help="OpenFace build/bin folder or tool (default $OPENFACE_BIN)")


def add_n2me_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("N2ME two-stage pipeline (--mode test --test_mode neutral|me|all)")
    g.add_argument("--test_mode", default="sequence", choices=("sequence", "neutral", "me", "all"),
                   help="sequence: ULME-style test (above); neutral: neutralise faces; me/all: neutral + real ME clips")
    g.add_argument("--test_dir", default=None, help="N2ME output root (neutral/, <emotion>/ ...)")
    g.add_argument("--input_dir", default=None, help="input faces (relative to --test_dir or absolute)")
    g.add_argument("--neutral_ckpt", default=None, help="neutral model: checkpoint file or run folder")
    g.add_argument("--neutral_expr_name", default=None, help="name of the neutral outputs (default: run name)")
    g.add_argument("--me_ckpt", default=None, help="ME model (n2me_unet or ganimation): checkpoint or run folder")
    g.add_argument("--me_expr_name", default=None, help="name of the ME outputs (default: run name)")
    g.add_argument("--keep_size", action="store_true", help="paste neutral faces back into the original photos")
    for dataset in DATASETS.values():  # N2ME's flags (--casme_ii_aus_dir keeps N2ME's spelling)
        g.add_argument(f"--{dataset.aus_dir_flag}", default=None,
                       help=f"{dataset.title}: per-clip OpenFace CSVs (<clip>.csv) or frame folders (<clip>/)")
    g.add_argument("--me_summary", default=None, help="me_summary.json (default <test_dir>/me_summary.json)")
    g.add_argument("--me_annotations", nargs="*", default=[], help="annotation sheets to build a missing summary")
    g.add_argument("--me_emotions", default="all", help="all, or a comma list of anger,disgust,fear,happiness,...")
    g.add_argument("--me_samples", type=int, default=10, help="clips per emotion (-1: all)")


def add_eval_options(p: argparse.ArgumentParser) -> None:
    """--mode eval: the flags of ``python -m metrics.evaluate``, from the same declaration (--fps is test mode's)."""
    add_eval_flags(p.add_argument_group("eval (--mode eval: metrics and the HTML report)"), standalone=False)


def build_parser(eval_flags: bool = True) -> argparse.ArgumentParser:
    """main.py's parser: every mode's flags. ``eval_flags=False`` for test-only commands (for_megc2021.py has its
    own --templates, a folder of template images)."""
    p = argparse.ArgumentParser(description="AU-conditioned facial micro-expression generation (GANimation family)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mode", default="train", choices=MODES,
                   help="train; test (generate sequences); eval (score results: python -m metrics.evaluate)")
    add_data_options(p)
    add_model_options(p)
    add_train_options(p)
    add_logging_options(p)
    add_test_options(p)
    add_n2me_options(p)
    if eval_flags:
        add_eval_options(p)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    opt = parser.parse_args(argv)
    opt.explicit = sorted(explicit_flags(parser, argv))
    opt.argv = list(argv)  # the command line as parsed, for the run folder's command.txt
    if opt.mode == "test" and "results" in opt.explicit:  # ULME-GAN's --results: where test mode writes
        if "results_dir" in opt.explicit and opt.results_dir != opt.results:
            parser.error(f"--results {opt.results} and --results_dir {opt.results_dir}: in test mode both name the "
                         f"output folder (--results is ULME-GAN's spelling); give one")
        opt.results_dir = opt.results
    try:
        apply_preset(opt)
    except ValueError as err:
        parser.error(str(err))
    check_mode_flags(parser, opt)
    return opt


def apply_preset(opt: argparse.Namespace) -> argparse.Namespace:
    """--preset NAME: the seed's settings for this --mode (options/presets.py), under the flags typed. What was
    overridden is kept in ``opt.preset_overrides`` (flag -> typed value), so options.json and run.json say it."""
    opt.preset_overrides = {}
    if not opt.preset:
        return opt
    preset = PRESETS[opt.preset]
    settings = {"train": preset.train, "test": preset.test}.get(opt.mode)
    if not settings:
        raise ValueError(f"--preset {opt.preset} has settings for --mode train and test, not --mode {opt.mode}; "
                         f"drop --preset")
    for flag, setting in settings.items():
        if flag in opt.explicit:
            opt.preset_overrides[flag] = getattr(opt, flag)
        else:
            setattr(opt, flag, setting.value)
    return opt


# Which modes read each group of flags (the group titles above); a flag outside its group's modes is listed in
# READ_ELSEWHERE with the other modes that read it.
GROUP_MODES = {"data": {"train"}, "model": {"train"}, "training": {"train"}, "logging": {"train"}, "test": {"test"},
               "N2ME": {"test"}, "eval": {"eval"}}
READ_ELSEWHERE = {
    "gpu_ids": set(MODES), "no_progress": set(MODES), "mode": set(MODES),
    "preset": {"test"},  # a preset has training and test-mode settings (options/presets.py)
    "data_root": {"test"}, "batch_size": {"test"}, "max_dataset_size": {"test"}, "clip_aus": {"test"},
    "ckpt_dir": {"test"}, "load_epoch": {"test"}, "ckpt_format": {"test"}, "seed": {"test"},
    "amp": {"test"}, "fast_path": {"test"}, "compile": {"test"}, "channels_last": {"test"},
    "fps": {"eval"}, "results": {"test"},  # test mode: ULME-GAN's name for --results_dir
}
# Typed where its mode does not read it, these change nothing the user can see, so the command would quietly do
# something else than asked: an error. Any other such flag gets a warning (the seeds' own commands pass some of them
# harmlessly: ULME-GAN's test command carries --serial_batches and --n_threads, its training command --pre_treatment).
REFUSED = {
    ("test", "out"): "eval mode's output folder; test mode writes to --results_dir",
    ("test", "aus_file"): "training's AU table; test mode reads the AU table inside --data_root (or --aus_matrix)",
    ("test", "imgs_dir"): "training's image sub-folder; test mode reads --data_root/imgs and imgs2",
    ("test", "aus_schema"): "the checkpoint's generator decides the AU schema in test mode; give AUs of that schema",
    ("test", "aus_nc"): "the checkpoint's generator decides the number of AUs in test mode",
    ("train", "ckpt"): "test mode's checkpoint file; to fine-tune, give --ckpt_dir RUN --load_epoch N",
    ("eval", "data_root"): "eval reads --results (and --sources, --templates)",
}


def check_mode_flags(parser: argparse.ArgumentParser, opt: argparse.Namespace) -> None:
    """A typed flag the chosen mode does not read: an error naming flag and mode (REFUSED, and flags that
    contradict each other), else a warning on stderr."""
    mode = opt.mode
    typed = set(opt.explicit)
    if mode == "test" and {"ckpt", "ckpt_dir"} <= typed:
        parser.error("--ckpt and --ckpt_dir both name the checkpoint in test mode: give one")
    owner = {action.dest: next(key for key in GROUP_MODES if (group.title or "").startswith(key))
             for group in parser._action_groups for action in group._group_actions
             if any((group.title or "").startswith(key) for key in GROUP_MODES)}
    for dest in sorted(typed):
        modes = GROUP_MODES.get(owner.get(dest), set(MODES)) | READ_ELSEWHERE.get(dest, set())
        if mode in modes:
            continue
        flag = f"--{dest}"
        if (mode, dest) in REFUSED:
            parser.error(f"{flag} does not apply to --mode {mode}: it is {REFUSED[mode, dest]}")
        print(f"warning: {flag} does not apply to --mode {mode} (it is read by --mode {'/'.join(sorted(modes))}); "
              f"ignored", file=sys.stderr)


def explicit_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Destinations the user typed, so a resumed run can tell overrides from defaults."""
    shadow = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:  # argparse has no public API for this; _actions is stable since 2.7
        if action.option_strings and action.dest != "help":
            kwargs = {"dest": action.dest, "default": argparse.SUPPRESS}
            if action.nargs == 0:
                kwargs["action"] = "store_const"
                kwargs["const"] = True
            else:
                kwargs["nargs"] = action.nargs
            shadow.add_argument(*action.option_strings, **kwargs)
    seen, _ = shadow.parse_known_args(argv)
    return set(vars(seen))
