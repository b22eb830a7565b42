"""Atomic replacement of folders: write beside the target, then rename.

A preset or export is assembled in a temporary sibling folder and renamed into
place, so a crash mid-write leaves the previous version intact.
"""

import os
import shutil
import tempfile
from pathlib import Path


def staging_dir(target):
    """A temporary sibling folder of `target` with ordinary permissions.

    mkdtemp makes folders private (0700); renamed into place they would stay so.

    Example:

    ```python
    staging = staging_dir(Path("zoo/my_preset"))
    ```
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def replace_folder(source, target):
    """Move the finished folder `source` to `target`, replacing what is there.

    The old folder is renamed aside first and deleted only after the new one
    is in place, so at every moment one complete version exists.
    """
    source, target = Path(source), Path(target)
    if target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(source, target)


def write_folder(target, write):
    """Build a folder with `write(folder)` beside `target`, then move it into place.

    `write` gets a path that does not exist yet and must create the folder
    there (e.g. `ExportArchive.write_out`). On any error nothing is left
    behind and a previous `target` stays intact.

    Example:

    ```python
    write_folder(Path("served/model"), lambda folder: archive.write_out(str(folder)))
    ```
    """
    target = Path(target)
    staging = staging_dir(target)
    try:
        folder = staging / target.name
        write(folder)
        replace_folder(folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
