"""Benchmarks and comparison recipes, run as `python -m kgan.benchmarks.NAME`.

Each module reproduces one measured figure of the README or a model card; its
docstring gives the command and what it measures.
"""

import sys


def report_error(program, err):
    """Print a user's mistake as one line, `PROGRAM: error: ...`, on stderr; return 2.

    The exit status of a benchmark's `main` for bad arguments, an unusable
    output path or a failed write: no traceback, whatever the message's lines.

    Example:

    ```python
    return report_error("low_data", err)
    ```
    """
    print(f"{program}: error: {' '.join(str(err).split())}", file=sys.stderr)
    return 2
