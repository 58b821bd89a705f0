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
