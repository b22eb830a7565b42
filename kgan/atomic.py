"""Atomic replacement of folders and files: write beside the target, then rename.

A preset or export is assembled in a temporary sibling folder and renamed into
place (`write_folder`, `replace_folder`); a single file such as a training
backup's weights is written to a temporary sibling and renamed (`write_file`).
A crash or SIGKILL mid-write leaves the previous version intact.

What an interrupted writer leaves is removed: on Ctrl-C or, within
`sigterm_as_interrupt` (the `kgan` command), SIGTERM, by the writer itself;
after a kill, by the next `staging_dir` of the same target, once the folder has
been left untouched for `STAGING_STALE_SECONDS`.
"""

import contextlib
import errno
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path


class OutputPathError(OSError):
    """An output location kgan cannot write: a folder or file in the way, or no permission.

    An `OSError`, raised before anything is written, with a message naming
    the part of the path in the way and what to do instead of the raw
    `[Errno 17] File exists` that `mkdir` gives.
    """


def _existing_ancestor(path):
    """The nearest ancestor of `path` (or `path` itself) that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


#: errno values of a write the user cannot make here: no permission, or a
#: read-only file system (EROFS is no PermissionError, so it needs naming).
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def unwritable(target, folder, err, action="write"):
    """The `OutputPathError` for `err` (one of `UNWRITABLE`) writing `target` in `folder`.

    It names the user's path, not the temporary one the failing call had.

    Example:

    ```python
    except OSError as err:
        if err.errno in UNWRITABLE:
            raise unwritable(target, target.parent, err) from err
        raise
    ```
    """
    why = (f"{folder} is on a read-only file system" if err.errno == errno.EROFS
           else f"no permission to write in {folder}")
    return OutputPathError(f"Cannot {action} {target}: {why}. Choose an output folder you can "
                           "write to.")


def make_dirs(folder):
    """Create `folder` and its parents, or raise `OutputPathError` saying why not.

    Example:

    ```python
    make_dirs(Path("runs/x/samples"))
    ```
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        blocker = _existing_ancestor(folder)
        raise OutputPathError(
            f"Cannot create the folder {folder}: {blocker} is a file, not a folder. "
            "Choose an output path inside a folder, or move that file away.",
        ) from err
    except OSError as err:
        if err.errno not in UNWRITABLE:
            raise
        raise unwritable(folder, _existing_ancestor(folder), err, "create the folder") from err
    return folder


def check_output_file(target):
    """Refuse, before any work, a file path that could not be written at the end.

    For the reports of long runs (a benchmark's `--json`): a mistyped path
    should cost a second, not the hour of work before the write. Creates
    nothing (a run that then fails must not leave empty folders behind;
    `write_file` makes the parents when it writes); raises `OutputPathError`
    if `target` is a folder, a parent is a file, or the nearest existing
    folder on its path cannot be written.

    Example:

    ```python
    check_output_file("results/report.json")  # before the run
    ...
    write_file(Path("results/report.json"), lambda path: Path(path).write_text(text))
    ```
    """
    target = Path(target)
    if target.is_dir():
        raise OutputPathError(f"Cannot write the file {target}: it is a folder. Give a file name.")
    folder = _existing_ancestor(target.parent)  # where the first new folder or the file goes
    if not folder.is_dir():
        raise OutputPathError(
            f"Cannot write {target}: {folder} is a file, not a folder. "
            "Choose an output path inside a folder, or move that file away.",
        )
    if not os.access(folder, os.W_OK):
        # statvfs is POSIX-only; elsewhere the folder is reported as not writable.
        read_only = hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY
        code = errno.EROFS if read_only else errno.EACCES
        raise unwritable(target, folder, OSError(code, os.strerror(code)))
    return target


def absolute_folder(target):
    """`target` as an absolute path whose last part is a real name, not `.` or `..`.

    A folder is written beside its target and renamed over it, so the target
    must be a name inside a parent: built from `..` as given, the staging
    folder's `staging/..` is the staging folder's parent, and the writer
    would write there. The parent is resolved (symlinks, `.` and `..` as the
    file system sees them); the last part is kept, so a symlink target is
    replaced as a link, not followed.

    Raises:
        OutputPathError: `target` is the file system's root, the current
            folder or a folder holding it: replacing it whole would delete
            the folder the user works in (and the renames fail half-way).

    Example:

    ```python
    absolute_folder("served/model")  # PosixPath('/home/me/served/model')
    absolute_folder("..")             # OutputPathError when run inside it
    ```
    """
    given = Path(target)
    if given.name in ("", ".", ".."):
        full = Path(os.path.realpath(given))
    else:
        full = Path(os.path.realpath(given.parent)) / given.name
    if full == full.parent:
        raise OutputPathError(
            f"Cannot write the folder {target}: it is the file system's root, and the output "
            "replaces its folder whole. Name a new folder for it, e.g. ./exported.",
        )
    try:
        cwd = Path(os.getcwd())
    except FileNotFoundError:  # the current folder was deleted: nothing to protect
        return full
    if full == cwd or full in cwd.parents:
        what = "the current folder" if full == cwd else "a folder holding the current folder"
        raise OutputPathError(
            f"Cannot write the folder {target}: it is {what} ({full}), and the output "
            "replaces its folder whole, with everything in it. Name a new folder for it, "
            "e.g. ./exported.",
        )
    return full


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C's `KeyboardInterrupt` is, so that writers clean up."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises `Terminated` (a `KeyboardInterrupt`).

    By default SIGTERM ends the process at once, so a writer's cleanup
    (`write_folder`'s staging folder, `write_file`'s temporary file) never
    ran and `timeout` or a job scheduler left a hidden partial copy behind.
    A no-op outside the main thread, or where a SIGTERM handler is already set.

    Example:

    ```python
    with sigterm_as_interrupt():
        write_folder("out/samples", write)  # a SIGTERM removes out/.samples-*
    ```
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def terminate(signum, frame):
        raise Terminated(f"terminated by signal {signum} (SIGTERM)")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _host():
    """This machine's name as a staging folder's name holds it: 12 hex digits of its sha256.

    A hash of the whole name, so that names differing only in punctuation or
    beyond some length ("node-1-1", "node-11") do not read as one machine.
    """
    return hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _staging_prefix(name):
    """`.NAME-HOST-PID-`: whose staging folder it is, so a later writer can tell a dead one."""
    return f".{name}-{_host()}-{os.getpid()}-"


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


#: Seconds a staging folder must be left untouched before a later writer may
#: delete it, even if its process looks dead: containers with their own PID
#: namespaces may share a host name, so "no such process here" is no proof.
STAGING_STALE_SECONDS = 10 * 60


def _last_written(folder):
    """The newest mtime of `folder` and of what it holds directly (a writer adds there)."""
    times = [folder.lstat().st_mtime]
    with os.scandir(folder) as entries:
        times.extend(entry.stat(follow_symlinks=False).st_mtime for entry in entries)
    return max(times)


def _remove_dead_staging(full):
    """Remove staging folders of `full` that processes of this machine, now ended, left.

    A writer killed (SIGKILL, a crash of the interpreter) cannot clean up.
    A folder goes only if its process is not running here and nobody wrote
    to it for `STAGING_STALE_SECONDS`. Folders of live writers, of other
    machines (a shared file system) and of unknown origin stay.
    """
    _remove_dead_staging_matching(full.parent, re.escape(full.name))


def remove_dead_staging_in(folder):
    """`_remove_dead_staging` for the staging folders of every target in `folder`.

    Example:

    ```python
    remove_dead_staging_in(Path("~/.keras/kgan/presets").expanduser())
    ```
    """
    _remove_dead_staging_matching(Path(folder), r".+")


def _remove_dead_staging_matching(folder, name):
    """Remove the dead, stale staging folders in `folder` whose target matches the regex `name`."""
    pattern = re.compile(rf"^\.(?:{name})-{_host()}-(?P<pid>\d+)-[A-Za-z0-9_]{{8}}$")
    try:
        children = list(folder.iterdir())
    except OSError:
        return
    cutoff = time.time() - STAGING_STALE_SECONDS
    for child in children:
        match = pattern.match(child.name)
        if not (match and child.is_dir() and not child.is_symlink()) or _process_alive(
                int(match["pid"])):
            continue
        try:
            if _last_written(child) < cutoff:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            pass  # gone already: another writer removed it


def staging_dir(target):
    """A temporary sibling folder of `target` with ordinary permissions.

    mkdtemp makes folders private (0700); renamed into place they would stay so.
    Its name, `.NAME-HOST-PID-XXXXXXXX` (HOST: a hash of the host name), says
    whose it is: staging folders of `target` left by a killed writer of this
    machine, untouched for `STAGING_STALE_SECONDS`, are removed here.

    Raises:
        OutputPathError: `target` is not a folder kgan may replace
            (`absolute_folder`), or its parent cannot be written.

    Example:

    ```python
    staging = staging_dir(Path("zoo/my_preset"))
    ```
    """
    full = absolute_folder(target)  # before any folder is made
    target = Path(target)
    make_dirs(target.parent)
    _remove_dead_staging(full)
    try:
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(full.name), dir=full.parent))
    except OSError as err:  # the folder exists but is read-only, or is no real folder (/proc)
        if err.errno in UNWRITABLE:
            raise unwritable(target, target.parent, err) from err
        # mkdtemp's error names the temporary folder, which the user never asked for.
        raise OutputPathError(
            f"Cannot write {target}: creating a folder in {target.parent} failed "
            f"({err.strerror}). Choose an output folder on an ordinary file system you can "
            "write to."
        ) from err
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _exchange(first, second):
    """Atomically swap two paths with Linux `renameat2(RENAME_EXCHANGE)`; False if unsupported."""
    global _RENAMEAT2
    if _RENAMEAT2 is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _RENAMEAT2 = getattr(libc, "renameat2", False) and (libc.renameat2, ctypes)
        except OSError:
            _RENAMEAT2 = False
    if not _RENAMEAT2:
        return False
    renameat2, ctypes = _RENAMEAT2
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # kernel or file system without it: fall back to two renames
    raise OSError(error, os.strerror(error), str(second))


#: `(renameat2, ctypes)` once looked up; False where libc lacks it.
_RENAMEAT2 = None


def _writer_id():
    """`PID-THREAD`: unique among the writers that are running at one time."""
    return f"{os.getpid()}-{threading.get_ident()}"


#: `write_file`'s temporary name for `target`: hidden, beside it, suffix kept.
_TEMPORARY = re.compile(r"^\.tmp-\d+-\d+-(?P<name>.+)$")


def written_target(path):
    """The file `write_file` was writing, for one of its temporary paths; else `path`.

    An error while writing names the temporary file; a message should name
    the file the user asked for.

    Example:

    ```python
    written_target("runs/.tmp-4242-140-out.npz")  # Path('runs/out.npz')
    ```
    """
    path = Path(os.fspath(path))
    match = _TEMPORARY.match(path.name)
    return path.with_name(match["name"]) if match else path


def write_file(target, write):
    """Write a file with `write(path)` beside `target`, then rename it into place.

    `write` gets a temporary path in the same folder (so the rename is atomic)
    and must create the file there, e.g. `model.save_weights`. The file is
    flushed to disk before the rename, so `target` is always either the
    previous complete file or the new one, also after a kill or power loss.
    On any error the temporary file is removed and `target` is untouched.

    Example:

    ```python
    write_file(Path("run/backup/epoch-3.weights.h5"), model.save_weights)
    ```
    """
    target = Path(target)
    make_dirs(target.parent)
    # Keep the whole name at the end: writers such as save_weights check the suffix.
    # Process and thread in the name: two threads saving the same file at
    # once each write their own temporary (the last rename wins, both whole).
    temporary = target.with_name(f".tmp-{_writer_id()}-{target.name}")  # see _TEMPORARY
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        if err.errno is not None and err.filename is None:
            # A failed write() (a full disk) names no file: name the one being written.
            raise OSError(err.errno, err.strerror, str(target)) from err
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def write_text(target, text):
    """`write_file` for text: `target` ends up holding `text` whole, or as it was.

    Example:

    ```python
    write_text("results/report.json", json.dumps(report, indent=2))
    ```
    """
    return write_file(target, lambda path: Path(path).write_text(text))


def _remove(path):
    """Delete `path` whatever it is: a folder's tree, a file or a symlink (not its target).

    Best effort: it deletes an old version after the new one is in place, so
    a failure here must not turn a finished replacement into an error.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def replace_folder(source, target):
    """Move the finished folder `source` to `target`, replacing what is there.

    Whatever `target` was (a folder, a file or a symlink) is deleted once the
    new folder is in place, leaving nothing else behind. On Linux the two are
    swapped in one `renameat2(RENAME_EXCHANGE)` call, so `target` names a
    complete version at every instant, even if the process is killed.
    Elsewhere the old version is renamed aside first, put back if the second
    rename fails, and deleted only after the new one is in place: a kill
    between the two renames leaves it complete under `.NAME.old-PID-THREAD`.

    Example:

    ```python
    from kgan.atomic import replace_folder, staging_dir
    staging = staging_dir("out/report")  # a temporary sibling: out/.report-HOST-PID-XXXXXXXX
    (staging / "index.txt").write_text("version 2")
    replace_folder(staging, "out/report")  # out/report now holds index.txt, whole
    ```
    """
    # Absolute, with a real last name: a target spelled `x/..` cannot be renamed.
    source, target = Path(source), absolute_folder(target)
    # lexists: a dangling symlink is still something to replace.
    if os.path.lexists(target) and _exchange(source, target):
        _remove(source)  # now the old version
        return
    if os.path.lexists(target):
        retired = target.with_name(f".{target.name}.old-{_writer_id()}")
        os.replace(target, retired)
        try:
            os.replace(source, target)
        except BaseException:
            os.replace(retired, target)  # the old version stays where it was
            raise
        _remove(retired)
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
    staging = staging_dir(target)
    try:
        # The real name: `staging / ".."` would be outside the staging folder.
        folder = staging / absolute_folder(target).name
        write(folder)
        replace_folder(folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Path(target)
