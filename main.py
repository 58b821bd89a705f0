"""Entry point: parse options, build the solver for --mode (train, test or eval), run it. No logic of its own."""
import errno
import os
import sys

from options import parse
from solvers.composition import create_solver

# Errors that describe bad input or a bad place to write (read-only, full disk: OSError): shown as one clear line
# (the message names the file and the fix).
USER_ERRORS = (OSError, ValueError, KeyError)


def main(argv=None) -> int:
    opt = parse(argv)
    try:
        solver = create_solver(opt)
        solver.run()
    except USER_ERRORS as err:
        if os.environ.get("MEGAN_DEBUG"):
            raise
        print(f"error: {user_message(err)}\n(set MEGAN_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # test and eval mode (training saves and returns on its own): results are whole or absent
        if os.environ.get("MEGAN_DEBUG"):
            raise
        print("interrupted: finished results are kept, the one being written was removed", file=sys.stderr)
        return 130
    # Stopped by Ctrl-C / SIGTERM after saving a resumable checkpoint: the shell's usual code for SIGINT.
    if getattr(solver, "interrupted", False):
        return 130
    return getattr(solver, "exit_code", 0)  # eval: 1 when some pairs failed


def user_message(err: BaseException) -> str:
    """One line for the user; an OS error on writing says what to do about it."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
        message += ": free space, or choose another output folder (--ckpt_dir / --results_dir / --out)"
    return message


WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}



if __name__ == "__main__":
    sys.exit(main())
