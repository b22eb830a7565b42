"""Argument checks shared by kgan's modules."""

import numbers
import os
from pathlib import Path


def positive_int(value, name):
    """`value` as an int if it is an integer >= 1.

    Raises:
        TypeError: for a non-integer (bools included: `num=True` is a mistake).
        ValueError: for an integer below 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")
    return int(value)


def physical_memory():
    """This machine's memory (RAM) in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # e.g. Windows has no sysconf
        return None


def available_memory():
    """Bytes this process can still use: the least of the OS's available memory
    (Linux `MemAvailable`, which counts reclaimable cache), a container's cgroup
    limit and the physical memory; None where none of them is known.

    In a container the physical memory is the host's: a request under it can
    still be past the container's limit or what other processes left.
    """
    known = [physical_memory()]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    known.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as limit:
                known.append(int(limit.read().strip()))  # "max" (no limit) is not an int
            break
        except (OSError, ValueError):
            continue
    known = [value for value in known if value is not None and value > 0]
    return min(known) if known else None


def format_bytes(size):
    """`size` bytes in decimal units, e.g. "3.1 TB"."""
    units = ("B", "KB", "MB", "GB", "TB", "PB")
    power = 0
    while size >= 1000 and power < len(units) - 1:
        size /= 1000
        power += 1
    if power == 0:
        return f"{int(size)} B"
    return f"{size:.3g} {units[power]}" if size < 1000 else f"{size:,.0f} {units[power]}"


def check_fits_in_memory(nbytes, request, holds, fix):
    """Refuse, before any work, a request for more bytes than this process can use.

    Past the memory left (`available_memory`) an allocation fails deep in
    TensorFlow or numpy with an out-of-memory error that names no argument,
    is killed by a container's limit, or swaps for hours.

    Args:
        nbytes: what the request must hold in memory at once.
        request: the call, e.g. "generate(1,000,000)".
        holds: what takes the memory, e.g. "1,000,000 float32 28x28x1 images".
        fix: the sentence saying what to do instead.

    Raises:
        ValueError: `nbytes` is more than `available_memory()`.
    """
    memory = available_memory()
    if memory is not None and nbytes > memory:
        raise ValueError(
            f"{request} would need {format_bytes(nbytes)} of memory ({holds}), more than "
            f"the {format_bytes(memory)} this process can use now. {fix}"
        )


def path_relation(target, folder):
    """How the path `target` sits against the folder `folder`, both resolved.

    Returns `"is"`, `"lies inside"` (target is below folder), `"holds"`
    (folder is below target) or None: the words messages put between the
    two paths. An output that replaces its folder whole must be none of
    them for a folder it reads or must keep.
    """
    target = Path(target).expanduser().resolve()
    folder = Path(folder).expanduser().resolve()
    if folder == target:
        return "is"
    if folder in target.parents:
        return "lies inside"
    if target in folder.parents:
        return "holds"
    return None
