"""Entry point: parse options, build the solver for --mode, run it. No logic of its own.

``--mode eval`` hands the rest of the command line to ``metrics.evaluate`` (its own flags: --results, --sources,
--templates, ...), so ``python main.py --mode eval`` and ``python -m metrics.evaluate`` are the same command."""
import errno
import os
import sys

from options import parse
from solvers import create_solver

# Errors that describe bad input or a bad place to write (read-only, full disk: OSError): shown as one clear line
# (the message names the file and the fix).
USER_ERRORS = (OSError, ValueError, KeyError)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if requested_mode(argv) == "eval":
        from metrics.evaluate import main as evaluate_main

        return evaluate_main(without_mode(argv))
    opt = parse(argv)
    try:
        solver = create_solver(opt)
        solver.run()
    except USER_ERRORS as err:
        if os.environ.get("MEGAN_DEBUG"):
            raise
        print(f"error: {user_message(err)}\n(set MEGAN_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2
    # Stopped by Ctrl-C / SIGTERM after saving a resumable checkpoint: the shell's usual code for SIGINT.
    return 130 if getattr(solver, "interrupted", False) else 0


def user_message(err: BaseException) -> str:
    """One line for the user; an OS error on writing says what to do about it."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
        message += ": free space, or choose another output folder (--ckpt_dir / --results_dir / --out)"
    return message


WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def requested_mode(argv: list[str]) -> str | None:
    """The value of --mode (either spelling: ``--mode eval`` or ``--mode=eval``), None when absent."""
    for i, arg in enumerate(argv):
        if arg == "--mode" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--mode="):
            return arg.split("=", 1)[1]
    return None


def without_mode(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--mode":
            skip = True
        elif not arg.startswith("--mode="):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
