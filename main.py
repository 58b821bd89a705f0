"""Entry point: parse options, build the solver for --mode (train, test or eval), run it. No logic of its own."""
import os
import sys

from options import parse
from solvers import create_solver

# Errors that describe bad input: shown as one clear line (the message names the file and the fix).
USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, KeyError)


def main(argv=None) -> int:
    opt = parse(argv)
    try:
        solver = create_solver(opt)
        solver.run()
    except USER_ERRORS as err:
        if os.environ.get("MEGAN_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"error: {message}\n(set MEGAN_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2
    # Stopped by Ctrl-C / SIGTERM after saving a resumable checkpoint: the shell's usual code for SIGINT.
    if getattr(solver, "interrupted", False):
        return 130
    return getattr(solver, "exit_code", 0)  # eval: 1 when some pairs failed


if __name__ == "__main__":
    sys.exit(main())
