"""options/: one parser for every mode, so ``main.py --help`` shows the eval flags too, and they match the
standalone ``python -m metrics.evaluate`` parser flag for flag, --fps rule included."""
import argparse

import pytest

from metrics import evaluate as evaluate_module
from metrics.evaluate import build_parser as build_eval_parser
from options import build_parser, parse


def flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def test_help_lists_the_flags_of_every_mode():
    text = build_parser().format_help()
    for flag in ("--data_root", "--lambda_aus", "--aus_matrix", "--test_mode", "--results", "--sources",
                 "--annotations", "--inception", "--no_report"):
        assert flag in text, flag
    assert "eval (--mode eval" in text


def test_eval_flags_match_the_standalone_evaluator():
    # One declaration (metrics.eval_flags) builds both: this guards the two ways it is called.
    main_flags, eval_flags = flags(build_parser()), flags(build_eval_parser())
    for dest, action in eval_flags.items():
        assert dest in main_flags, f"--{dest} of metrics.evaluate is missing from main.py"
        mine = main_flags[dest]
        assert mine.option_strings == action.option_strings and mine.nargs == action.nargs
        assert mine.choices == action.choices or tuple(mine.choices) == tuple(action.choices)
        if dest not in ("results", "inception"):  # required there / read from $MEGAN_INCEPTION at parse time there
            assert mine.default == action.default, dest
    assert main_flags["fps"].type is eval_flags["fps"].type  # one --fps rule for main.py and metrics.evaluate


def test_eval_mode_parses_with_the_other_modes_flags():
    opt = parse(["--mode", "eval", "--results", "r", "--sources", "s", "--annotations", "a.xlsx", "b.xlsx",
                 "--no_report", "--fps", "200"])
    assert (opt.mode, opt.results, opt.sources, opt.annotations, opt.no_report, opt.fps) == \
        ("eval", "r", "s", ["a.xlsx", "b.xlsx"], True, 200.0)
    assert {"results", "sources", "annotations", "no_report", "fps", "mode"} <= set(opt.explicit)


def test_eval_command_records_what_was_typed():
    from solvers.evaluation import eval_command

    opt = parse(["--mode", "eval", "--results", "r dir", "--no_report", "--annotations", "a.xlsx", "b.xlsx"])
    assert eval_command(opt) == "python -m metrics.evaluate --results 'r dir' --annotations a.xlsx b.xlsx --no_report"


def test_save_video_is_the_explicit_default_and_contradicts_no_video():
    from solvers.composition import write_videos

    assert write_videos(parse(["--mode", "test"])) is True
    assert write_videos(parse(["--mode", "test", "--save_video"])) is True  # ULME-GAN's commands keep working
    assert write_videos(parse(["--mode", "test", "--no_video"])) is False
    with pytest.raises(ValueError, match="contradict"):
        write_videos(parse(["--mode", "test", "--save_video", "--no_video"]))


@pytest.mark.parametrize("fps", ["-5", "0", "0.001", "inf", "nan", "fast"])
def test_standalone_evaluator_refuses_a_bad_fps_like_main(tmp_path, capsys, fps):
    with pytest.raises(SystemExit) as stop:  # checked while parsing: nothing under --results is read
        evaluate_module.main(["--results", str(tmp_path / "never_read"), "--fps", fps])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --fps" in err and fps in err and "Traceback" not in err
    if fps != "fast":  # the Python entry point has the same rule
        with pytest.raises(ValueError, match="must be between 1 and 1000|is not a finite number"):
            evaluate_module.evaluate(tmp_path / "never_read", fps=float(fps))


# ------------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("name", ["ulme_gan", "n2me_neutral", "n2me_me", "ganimation"])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_preset_resolves_to_the_values_in_the_preset_file(name, mode):
    from options.presets import PRESETS

    settings = getattr(PRESETS[name], mode)
    opt = parse(["--preset", name, "--mode", mode, "--data_root", "d"])
    for flag, setting in settings.items():
        assert getattr(opt, flag) == setting.value, (name, mode, flag)
        assert setting.source.strip(), f"{name}.{flag}: every value names where it comes from"
    assert opt.preset == name and opt.preset_overrides == {}


def test_ulme_gan_preset_has_the_seeds_published_training_values():
    # Spelled out from seed-systems.md section 2 (not read back from the preset file), so a wrong value fails here.
    opt = parse(["--preset", "ulme_gan", "--mode", "train", "--data_root", "d"])
    assert (opt.lambda_mask, opt.lambda_tv, opt.lambda_aus, opt.lambda_rec, opt.lambda_wgan_gp) == (0, 0, 160, 10, 10)
    assert (opt.lr, opt.beta1, opt.beta2, opt.train_gen_iter, opt.batch_size) == (1e-4, 0.5, 0.999, 5, 25)
    assert (opt.niter, opt.niter_decay, opt.final_size, opt.norm, opt.model) == (20, 10, 128, "instance", "ganimation")
    test = parse(["--preset", "ulme_gan", "--mode", "test"])
    assert test.re_code and test.linear_fitting and test.pre_treatment and test.au_mode == "absolute"


def test_typed_flags_override_a_preset_and_are_recorded():
    opt = parse(["--preset", "ulme_gan", "--mode", "train", "--data_root", "d", "--batch_size", "4", "--lr", "2e-4"])
    assert (opt.batch_size, opt.lr, opt.niter) == (4, 2e-4, 20)
    assert opt.preset_overrides == {"batch_size": 4, "lr": 2e-4}
    assert parse(["--data_root", "d"]).preset is None  # no preset: nothing changes


def test_preset_without_settings_for_the_mode_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        parse(["--preset", "ganimation", "--mode", "eval", "--results", "r"])
    assert info.value.code == 2 and "not --mode eval" in capsys.readouterr().err


@pytest.mark.slow
def test_training_with_a_preset_records_it_in_options_json(tmp_path):
    import json

    from helpers import make_tiny_dataset
    from main import main

    data = make_tiny_dataset(tmp_path / "data", n=4)
    small = ["--final_size", "32", "--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--d_layers", "3",
             "--batch_size", "2"]
    assert main(["--preset", "ulme_gan", "--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "p",
                 "--gpu_ids", "-1", "--max_steps", "1", "--no_progress", *small]) == 0
    saved = json.loads((tmp_path / "ck" / "p" / "options.json").read_text())
    assert saved["preset"] == "ulme_gan" and saved["lambda_mask"] == 0 and saved["niter"] == 20
    assert saved["preset_overrides"] == {"final_size": 32, "ngf": 8, "ndf": 8, "n_blocks": 1, "d_layers": 3,
                                         "batch_size": 2}
