"""The zoo: registries of architectures and presets, and preset I/O.

A *preset* is a folder in the keras-hub style:

```
config.json        keras.saving.serialize_keras_object(model)
model.weights.h5   the model's weights (no optimizer state)
metadata.json      dataset, shapes, parameter counts, sha256 of the weights,
                   the recipe command, license, measured figures
README.md          the model card, rendered from metadata.json
samples.png        a sample grid (latent seed 0)
```

`load` takes a registered name, a preset folder, or an https URL of a
`.tar.gz` of such a folder together with its full sha256. A download is
checked against that sha256 and extracted into the Keras cache,
`$KERAS_HOME/kgan/presets/<sha256>/` (`~/.keras` without `KERAS_HOME`; or
`cache_dir=`); a file whose hash does not match is deleted before the error
is raised, so nothing unverified stays cached. A server that sends nothing
for `DOWNLOAD_TIMEOUT` seconds (60) fails the download.

Example:

```python
import kgan
kgan.zoo.list("dcgan*")          # ['dcgan_mnist']
gan = kgan.zoo.load("dcgan_mnist")
images = gan.generate(16, seed=0)
```
"""

import builtins
import collections.abc
import dataclasses
import difflib
import errno
import fnmatch
import hashlib
import http.client
import json
import os
import platform
import shutil
import tarfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import keras
import numpy as np

from kgan._checks import path_relation
from kgan.atomic import (
    OutputPathError,
    _writer_id,
    make_dirs,
    remove_dead_staging_in,
    replace_folder,
    staging_dir,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
CARD_FILE = "README.md"
SAMPLES_FILE = "samples.png"
PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE, CARD_FILE, SAMPLES_FILE)

#: Serializes the warning capture around loading a preset's weights (see `load`).
_WARNINGS_LOCK = threading.Lock()

#: Metadata `save_preset` derives from the model and its weights file.
DERIVED_METADATA = ("weights_sha256", "weights_bytes", "parameters", "image_shape", "latent_dim",
                    "class_name", "num_classes")

#: keys every preset's metadata.json must have.
REQUIRED_METADATA = (
    "name",
    "architecture",
    "description",
    "dataset",
    "image_shape",
    "latent_dim",
    "parameters",
    "weights_sha256",
    "recipe",
    "license",
    "metrics",
)


class ZooError(ValueError):
    """Base class of the zoo's errors."""


class UnknownNameError(ZooError, KeyError):
    """A preset or architecture name that is not registered."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


class IntegrityError(ZooError):
    """A corrupt file: its sha256 does not match the recorded one, or it cannot be read."""


class PresetMismatchError(ZooError):
    """A preset whose parts disagree: metadata vs config, or weights vs architecture."""


class UnsafeContentError(ZooError):
    """A model file that would run code when loaded (a Lambda layer, a pickled function).

    kgan deserializes in Keras safe mode and never turns it off for you.
    """


def _unsafe_or_raise(err, source):
    """Re-raise Keras' safe-mode refusal of `source` as `UnsafeContentError`."""
    if isinstance(err, ValueError) and "safe_mode" in str(err):
        raise UnsafeContentError(
            f"Refusing to load {source}: it holds a Lambda layer or other Python code, and "
            "kgan loads models in Keras safe mode, which never runs code from a file. "
            "Rebuild the model from registered layers (subclass keras.layers.Layer with "
            "@keras.saving.register_keras_serializable) instead of a Lambda, or, only if you "
            "trust the file, load it yourself with keras.saving.load_model(path, safe_mode=False)."
        ) from err


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A registered architecture: its class and a builder from hyperparameters.

    Example:

    ```python
    arch = kgan.zoo.architecture("dcgan")  # register_architecture returns one too
    arch.name, arch.cls  # ('dcgan', <class 'kgan.models.dcgan.DCGAN'>)
    gan = arch.builder(image_shape=(28, 28, 1), latent_dim=16, filters=8)
    ```
    """

    name: str
    cls: type
    builder: object
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Preset:
    """A registered preset: a local folder, or a remote archive and its sha256.

    Example:

    ```python
    preset = kgan.zoo.register_preset(
        "my_digits", path=kgan.zoo.resolve("dcgan_mnist"), description="digits, my copy")
    preset.name, preset.path, preset.url  # ('my_digits', '.../dcgan_mnist', None)
    kgan.zoo.unregister_preset("my_digits")
    ```
    """

    name: str
    path: str = None
    url: str = None
    sha256: str = None
    description: str = ""


_ARCHITECTURES = {}
_PRESETS = {}


# ---------------------------------------------------------------------- registry
def register_architecture(name, cls, builder=None, description=""):
    """Register an architecture under a unique `name`.

    Args:
        name: registry name, e.g. `"dcgan"`.
        cls: the `kgan.models.GAN` subclass.
        builder: callable returning a model from hyperparameters (defaults to
            `cls.from_image_shape`).
        description: one line for `kgan list`.

    Raises:
        ValueError: if `name` is already registered.

    Example:

    ```python
    import functools
    small = functools.partial(kgan.DCGAN.from_image_shape, filters=16, latent_dim=32)
    kgan.zoo.register_architecture("dcgan_small", kgan.DCGAN, small, "DCGAN, quarter width")
    gan = kgan.zoo.build("dcgan_small", image_shape=(28, 28, 1))
    ```
    """
    if name in _ARCHITECTURES:
        raise ValueError(f"Architecture {name!r} is already registered; names are unique.")
    _ARCHITECTURES[name] = Architecture(name, cls, builder or cls.from_image_shape, description)
    return _ARCHITECTURES[name]


def register_preset(name, path=None, url=None, sha256=None, description=""):
    """Register a preset: a local folder or an https archive with its sha256.

    Raises:
        ValueError: if `name` is taken, or the location is incomplete.

    Example:

    ```python
    folder = kgan.zoo.catalog_dir() / "dcgan_mnist"  # or a folder from kgan.zoo.save_preset
    kgan.zoo.register_preset("my_digits", path=folder, description="digits, my copy")
    gan = kgan.zoo.load("my_digits")
    # remote: register_preset(name, url="https://.../x.tar.gz", sha256="<64 hex digits>")
    ```
    """
    if name in _PRESETS:
        raise ValueError(f"Preset {name!r} is already registered; names are unique.")
    if (path is None) == (url is None):
        raise ValueError("Give exactly one of `path` (a folder) or `url` (an archive).")
    if url is not None:
        _check_sha256(sha256)
    _PRESETS[name] = Preset(name, None if path is None else str(Path(path).expanduser()), url, sha256, description)
    return _PRESETS[name]


def unregister_preset(name):
    """Remove a preset registration (for tests and plugins).

    Example:

    ```python
    kgan.zoo.register_preset("scratch", path=kgan.zoo.catalog_dir() / "dcgan_mnist")
    kgan.zoo.unregister_preset("scratch")
    "scratch" in kgan.zoo.list()  # False
    ```

    Raises:
        UnknownNameError: no preset of that name is registered.
    """
    if name not in _PRESETS:
        raise UnknownNameError(_unknown_message("preset", name, _PRESETS))
    _PRESETS.pop(name)


def list(pattern="*", kind="presets"):  # noqa: A001 - timm-style API name
    """Sorted registered names matching a shell-style `pattern`.

    Args:
        pattern: e.g. `"*mnist*"`.
        kind: `"presets"` or `"architectures"`.

    Example:

    ```python
    kgan.zoo.list("dcgan*")
    kgan.zoo.list(kind="architectures")
    ```
    """
    registry = {"presets": _PRESETS, "architectures": _ARCHITECTURES}.get(kind)
    if registry is None:
        raise ValueError(f"kind must be 'presets' or 'architectures', got {kind!r}.")
    return sorted(n for n in registry if fnmatch.fnmatchcase(n, pattern))


def architecture(name):
    """The registered `Architecture` called `name`.

    Example:

    ```python
    arch = kgan.zoo.architecture("wgan_gp")
    arch.cls, arch.description  # (<class 'kgan.models.wgan.WGANGP'>, 'Gulrajani et al. ...')
    gan = arch.builder(image_shape=(28, 28, 1), latent_dim=16, filters=8)
    ```
    """
    if name not in _ARCHITECTURES:
        raise UnknownNameError(_unknown_message("architecture", name, _ARCHITECTURES))
    return _ARCHITECTURES[name]


def build(name, **kwargs):
    """Build a fresh (untrained) model of a registered architecture.

    Example:

    ```python
    gan = kgan.zoo.build("dcgan", image_shape=(32, 32, 3), latent_dim=128)
    ```
    """
    arch = architecture(name)
    try:
        return arch.builder(**kwargs)
    except (TypeError, ValueError) as err:
        # Keras reports a misspelt option as "Unrecognized keyword arguments
        # passed to DCGAN: {...}", without saying what the builder does take.
        if "keyword argument" not in str(err):
            raise
        import inspect

        taken = [p for p in inspect.signature(arch.builder).parameters if p != "kwargs"]
        raise TypeError(
            f"{_one_line(err)}. kgan.zoo.build({name!r}, ...) takes {', '.join(taken)} (and "
            f"keras.Model options such as name); see help({arch.cls.__name__}.from_image_shape)."
        ) from err


def info(name, cache_dir=None, allow_http=False, timeout=None):
    """Metadata of a preset (name, folder or URL), with its location added.

    `cache_dir`, `allow_http` and `timeout` as in `load` (e.g. a local test
    server's plain-http URL).

    Example:

    ```python
    meta = kgan.zoo.info("dcgan_mnist")
    meta["dataset"], meta["image_shape"], meta["latent_dim"]  # ('mnist_5k', [28, 28, 1], 100)
    meta["location"]  # '.../zoo/dcgan_mnist'
    ```
    """
    folder = resolve(name, cache_dir=cache_dir, allow_http=allow_http, timeout=timeout)
    metadata = read_metadata(folder)
    metadata["location"] = str(folder)
    return metadata


def _unknown_message(kind, name, registry):
    close = difflib.get_close_matches(str(name), builtins.list(registry), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    known = ", ".join(sorted(registry)) or "none"
    return f"Unknown {kind} {name!r}.{hint} Known: {known}."


# ---------------------------------------------------------------------- resolve
def resolve(source, sha256=None, cache_dir=None, allow_http=False, timeout=None):
    """Return the local preset folder for a name, folder or URL.

    Args:
        source: a registered preset name, a path to a preset folder, or an
            `https://` URL of a `.tar.gz` preset archive.
        sha256: the archive's full sha256 (required for URLs not registered).
        cache_dir: Keras cache root (default `~/.keras`, or `KERAS_HOME`).
        allow_http: accept plain `http://` (only for local testing).
        timeout: seconds a download may wait for the server's next bytes
            (default `DOWNLOAD_TIMEOUT`, 60).

    Example:

    ```python
    folder = kgan.zoo.resolve("dcgan_mnist")  # Path('.../zoo/dcgan_mnist'); no download
    sorted(p.name for p in folder.iterdir())  # ['README.md', 'config.json', ...]
    ```
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"A preset is named by a string or path: a registered name (kgan.zoo.list()), a "
            f"preset folder or an https URL; got {source!r}."
        )
    source = os.fspath(source)
    if not source.strip():
        # Path("") is the current folder: an empty name would load whatever is there.
        raise ZooError(
            "The preset name is empty: give a registered name (kgan.zoo.list(), `kgan list`), "
            "a preset folder (e.g. './my_preset') or an https URL with its sha256."
        )
    if sha256 is not None and not source.startswith(("https://", "http://")):
        raise ZooError(
            f"sha256 checks a downloaded archive, but {source!r} is not a URL: a local or "
            "registered preset is checked by its metadata.json (weights_sha256). Drop sha256 "
            "(--sha256)."
        )
    if source in _PRESETS:
        preset = _PRESETS[source]
        _warn_if_shadowed(source, preset)
        if preset.path is not None:
            if not Path(preset.path).is_dir():
                raise ZooError(
                    f"Preset {source!r} is registered with the folder {preset.path}, which does "
                    f"not exist: register it again with its folder, or "
                    f"kgan.zoo.unregister_preset({source!r})."
                )
            return Path(preset.path)
        return _fetch(preset.url, preset.sha256, cache_dir, allow_http, timeout)
    if source.startswith(("https://", "http://")):
        return _fetch(source, sha256, cache_dir, allow_http, timeout)
    path = Path(source).expanduser()
    if path.is_dir():
        check_not_train_output(path)
        return path
    if path.exists():
        raise ZooError(f"{source!r} is a file, not a preset folder (one holding {CONFIG_FILE}).")
    if os.sep in source or source.startswith("."):
        raise ZooError(
            f"Preset folder {source!r} does not exist. Check the path, or give a preset "
            "name (kgan.zoo.list(), `kgan list`) or an https URL with its sha256."
        )
    raise UnknownNameError(_unknown_message("preset", source, _PRESETS))


def _warn_if_shadowed(name, preset):
    """Warn that the registered `name` is loaded although a folder of that name is here.

    The registered name wins (as in keras-hub): a folder someone made must
    not silently replace a preset the recipe or the docs name. But the user
    may have meant the folder, so say how to load it: `./NAME`.
    """
    local = Path(name)
    if not local.is_dir():
        return
    if preset.path is not None and local.resolve() == Path(preset.path).expanduser().resolve():
        return  # the registered preset itself (e.g. run from inside zoo/)
    where = preset.path if preset.path is not None else preset.url
    warnings.warn(
        f"{name!r} names the registered preset ({where}), which is loaded; the folder "
        f"{local.resolve()} in the current folder is not. To load that folder, pass "
        f"'./{name}'.",
        stacklevel=3,
    )


def train_output_preset(folder):
    """The preset inside a `kgan train` output folder, or None for any other folder.

    `kgan train ... --output RUN` writes the preset to `RUN/preset`, beside
    `samples/`, `log.csv` and `tensorboard/`; `RUN` itself is not a preset.

    Example:

    ```python
    kgan.zoo.train_output_preset("runs/dcgan")  # Path('runs/dcgan/preset'), or None
    ```
    """
    folder = Path(folder).expanduser()
    preset = folder / "preset"
    if not (folder / METADATA_FILE).exists() and (preset / METADATA_FILE).is_file():
        return preset
    return None


def check_not_train_output(folder):
    """Raise `ZooError` naming the preset if `folder` is a `kgan train` output folder.

    Example:

    ```python
    kgan.zoo.check_not_train_output("runs/dcgan")  # ZooError: ... its preset is runs/dcgan/preset
    ```
    """
    preset = train_output_preset(folder)
    if preset is not None:
        raise ZooError(
            f"{folder} is a `kgan train` output folder, not a preset: its preset is {preset}. "
            "Give that folder instead."
        )


def _check_sha256(sha256):
    if not isinstance(sha256, str) or len(sha256) != 64 or any(
        c not in "0123456789abcdef" for c in sha256.lower()
    ):
        if sha256 is None:
            raise ZooError(
                "A remote preset needs its full sha256 (64 hex characters), which checks "
                "the archive downloaded: pass sha256=... (on the command line, --sha256 "
                "HEX), e.g. from the page that publishes the URL."
            )
        if not isinstance(sha256, str):
            problem = f"got the {type(sha256).__name__} {sha256!r}"
        elif len(sha256) != 64:
            problem = f"got {sha256!r}, {len(sha256)} characters"
        else:
            problem = f"{sha256!r} has characters that are not hex digits (0-9, a-f)"
        raise ZooError(
            f"A remote preset needs its full sha256 (64 hex characters); {problem}. Copy the "
            "whole hash from the page that publishes the URL."
        )
    return sha256.lower()


#: Seconds a download waits for the server's next bytes before it fails: without
#: a bound a server that stalls mid-file hangs `load` forever. A slow but
#: steady server is never cut off. `load(..., timeout=)` overrides it per call.
DOWNLOAD_TIMEOUT = 60.0


def cache_root_dir(cache_dir=None):
    """The Keras cache folder remote presets are downloaded into, `~` expanded.

    `cache_dir` if given, else `$KERAS_HOME`, else `~/.keras`, as Keras
    itself chooses; the presets are extracted in its `kgan/presets/<sha256>/`.

    Example:

    ```python
    kgan.zoo.cache_root_dir()  # PosixPath('/home/me/.keras'), or $KERAS_HOME
    kgan.zoo.cache_root_dir("~/kc")  # PosixPath('/home/me/kc')
    ```
    """
    root = cache_dir or os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(root).expanduser()


def _fetch(url, sha256, cache_dir, allow_http, timeout=None):
    if url.startswith("http://") and not allow_http:
        raise ZooError(
            f"Refusing plain-http URL {url!r}: use https (in Python, "
            "allow_http=True accepts a server you trust, e.g. on 127.0.0.1; the command "
            "line takes https only)."
        )
    sha256 = _check_sha256(sha256)
    cache_root = cache_root_dir(cache_dir)
    extracted = cache_root / "kgan" / "presets" / sha256
    if extracted.is_dir():
        try:
            _check_preset_files(extracted)
            return extracted
        except IntegrityError as err:
            # Truncated or deleted by hand, or by a full disk: fetched again once,
            # or every later load would fail the same way.
            warnings.warn(f"Downloading {url} again: {err}", stacklevel=3)
            _remove_cache_entry(extracted)
    try:
        return _download_into_cache(url, sha256, cache_root, timeout)
    except OSError as err:  # network errors are ZooErrors by now (`_download_error`): the cache's
        raise _cache_unwritable(cache_root, cache_dir, err) from err


def _download_into_cache(url, sha256, cache_root, timeout):
    """Download, verify and extract the archive at `url` into `cache_root`; its folder."""
    extracted = cache_root / "kgan" / "presets" / sha256
    make_dirs(cache_root / "kgan")
    _sweep_stale_downloads(cache_root / "kgan")
    # A name of this writer's own: processes (or threads) fetching the same
    # preset at once must not download over, verify or delete each other's file.
    archive = cache_root / "kgan" / f"kgan-preset-{sha256}.{_writer_id()}.tar.gz"
    try:
        actual, size, content_type = _download(url, archive, timeout)
        if actual != sha256:
            what = f", served as {content_type}" if content_type else ""
            raise IntegrityError(
                f"Download of {url} does not match sha256 {sha256}: it has sha256 {actual} "
                f"({size:,} bytes{what}); the file was deleted. Check the URL and the hash "
                "you were given."
            )
        # Another writer may have finished first: its verified entry is the same.
        if not (extracted / CONFIG_FILE).is_file():
            _safe_extract(archive, extracted, url)
        try:
            _check_preset_files(extracted, fix=(
                f"The archive from {url} matches its sha256, so it was published so: nothing "
                "was cached; tell its publisher."))
        except IntegrityError:
            _remove_cache_entry(extracted)  # nothing refused stays cached
            raise
    finally:
        # The verified, extracted folder is the cache entry; the archive is
        # not needed again (and a refused or partial one must not stay cached).
        archive.unlink(missing_ok=True)
    return extracted


def _cache_unwritable(cache_root, cache_dir, err):
    """The `ZooError` for `err`, an `OSError` writing the download cache `cache_root`.

    `make_dirs` and `staging_dir` say "choose an output folder": the cache
    is no output the user named, but `cache_dir` or `KERAS_HOME`.
    """
    code = err.errno if err.errno is not None else getattr(err.__cause__, "errno", None)
    reason = {errno.EROFS: "it is on a read-only file system", errno.EACCES: "no permission to "
              "write there", errno.EPERM: "no permission to write there", errno.ENOSPC: "no "
              "space left on the device", errno.EEXIST: "a file is in the way of a folder",
              errno.ENOTDIR: "a file is in the way of a folder"}.get(code, _one_line(err))
    if cache_dir:
        setting = f"cache_dir ({cache_dir})"
    elif os.environ.get("KERAS_HOME"):
        setting = f"KERAS_HOME ({os.environ['KERAS_HOME']})"
    else:
        setting = "the Keras cache folder (~/.keras, as KERAS_HOME is not set)"
    return ZooError(
        f"Cannot cache the downloaded preset in {cache_root}: {reason}. Remote presets are "
        f"cached in {setting}: set KERAS_HOME (or pass cache_dir=...) to a folder you can "
        "write to, or fix that folder."
    )


#: Seconds after which a partial download nobody writes to any more is deleted
#: (one whose process was killed): a running download writes at least every
#: `DOWNLOAD_TIMEOUT` seconds, so a day is far past any of them. Partial
#: extractions go as other staging folders do (`kgan.atomic.remove_dead_staging_in`).
STALE_DOWNLOAD_SECONDS = 24 * 3600


def _sweep_stale_downloads(kgan_cache):
    """Delete the leftovers of killed fetches: `.tar.gz` parts and staging folders.

    Each fetch removes its own files, unless its process dies first (kill -9,
    a power cut): then they would stay in the cache for good.
    """
    cutoff = time.time() - STALE_DOWNLOAD_SECONDS
    for path in kgan_cache.glob("kgan-preset-*.tar.gz"):  # written to as long as it downloads
        try:
            if path.lstat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass  # gone already (another fetch swept it), or not ours to delete
    # Extractions are judged by their writer's process, not by mtime alone: a
    # tar's "." member gives the folder it is extracted into the archive's mtime.
    remove_dead_staging_in(kgan_cache / "presets")


def _remove_cache_entry(folder):
    """Delete the download cache entry `folder`, or say which folder to delete."""
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass  # another writer removed it first
    except OSError as err:
        raise ZooError(
            f"The download cache entry {folder} is damaged and cannot be removed "
            f"({err.strerror}): delete that folder yourself, then load the preset again."
        ) from err


def _download(url, target, timeout=None, what="preset", timeout_setting="load(..., timeout=...)",
              hash_name="sha256"):
    """Stream `url` into the file `target`: `(hex digest, bytes, content type or None)`.

    The digest is `hash_name`'s (a `hashlib` name), taken as the bytes
    arrive. `what` names the download in errors ("Could not download preset
    from ..."), and a stall's error names `timeout_setting` besides
    `DOWNLOAD_TIMEOUT`.

    `urlopen`'s timeout bounds each wait for the server (connecting, and
    every read), not the whole download. Progress goes to stdout, as
    `keras.utils.get_file` prints it (the CLI sends it to stderr).
    """
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    digest, size = hashlib.new(hash_name), 0
    # Only the network calls are inside the `try`: an OSError of the cache file
    # (open, write) reaches `_fetch`, which names the cache folder to change.
    with open(target, "wb") as out:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                expected = response.length  # None without a Content-Length
                content_type = response.headers.get("Content-Type")
                print(f"Downloading data from {url}")
                progress = keras.utils.Progbar(expected, unit_name="byte")
                while chunk := response.read(1 << 16):
                    digest.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as err:
                        raise _CacheWriteError(err) from err
                    size += len(chunk)
                    progress.update(size)
        except _CacheWriteError as failed:
            raise failed.error from None
        except (OSError, http.client.HTTPException) as err:
            raise _download_error(url, timeout, err, what, timeout_setting) from err
    if expected is not None and size < expected:
        # http.client returns a short body as if complete: a dropped connection.
        raise ZooError(
            f"Download of {url} is incomplete: the connection ended after {size:,} of "
            f"{expected:,} bytes. Try again."
        )
    return digest.hexdigest(), size, content_type


class _CacheWriteError(Exception):
    """A failed write of the downloaded file, carried past `_download`'s network `except`."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def _download_error(url, timeout, err, what="preset", timeout_setting="load(..., timeout=...)"):
    """The `ZooError` for `err`, an error of `urlopen` or of reading its response.

    Every one is the network's or the server's, never the cache folder's:
    an `ssl.SSLError` mid-read has errno 1 (EPERM), which must not read as
    "no permission to write the cache".
    """
    if isinstance(err, TimeoutError) or (isinstance(err, urllib.error.URLError)
                                         and isinstance(err.reason, TimeoutError)):
        return _stalled(url, timeout, timeout_setting)  # no connection or bytes within the timeout
    if isinstance(err, urllib.error.HTTPError):
        return ZooError(
            f"Could not download {what} from {url}: the server answered HTTP {err.code} "
            f"({err.reason}). Check the URL."
        )
    if isinstance(err, urllib.error.URLError):
        return ZooError(
            f"Could not download {what} from {url}: {err.reason}. Check the URL and the "
            "network connection."
        )
    if isinstance(err, (http.client.HTTPException, ConnectionError)):
        return ZooError(
            f"Could not download {what} from {url}: the connection failed "
            f"({type(err).__name__}: {err}). Try again."
        )
    # Any other OSError: ssl.SSLError, ENETUNREACH, ...
    return ZooError(
        f"Could not download {what} from {url}: {type(err).__name__}: {_one_line(err)}. "
        "Check the network connection and try again."
    )


def _stalled(url, timeout, setting="load(..., timeout=...)"):
    return ZooError(
        f"Download of {url} stalled: the server sent nothing for {timeout:g} s, the timeout "
        f"(kgan.zoo.DOWNLOAD_TIMEOUT, or {setting}). Check the network and the "
        "server, or try again with a longer timeout; nothing was cached."
    )


def _safe_extract(archive, destination, source):
    """Extract a preset archive, refusing links and paths outside it, atomically.

    `source` (the URL) names the archive in errors: `archive` is a temporary file.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(destination)
    try:
        try:
            tar = tarfile.open(archive, "r:*")
        except tarfile.ReadError:
            raise ZooError(
                f"The archive from {source} is not a tar file (plain, gzip, bz2 or xz; a .zip "
                "is not read): a remote preset is a .tar.gz of a preset folder (see kgan.zoo's "
                "module docstring)."
            ) from None
        with tar:
            members = tar.getmembers()
            for member in members:
                name = member.name
                if name.startswith("/") or ".." in Path(name).parts:
                    raise ZooError(f"Refusing archive member with unsafe path {name!r}.")
                if not (member.isfile() or member.isdir()):
                    raise ZooError(f"Refusing archive member {name!r}: not a plain file.")
            # Into a subfolder: a "." member sets the mtime of the folder it is
            # extracted into to the archive's, and the staging folder's own
            # mtime tells other writers that this extraction is alive.
            extracted = staging / "archive"
            tar.extractall(extracted, members=members, filter="data")
        root = extracted
        if not (root / CONFIG_FILE).exists():
            subdirs = [p for p in extracted.iterdir() if p.is_dir()]
            if len(subdirs) == 1 and (subdirs[0] / CONFIG_FILE).exists():
                root = subdirs[0]
            else:
                raise ZooError(
                    f"The archive from {source} holds no preset folder (one with {CONFIG_FILE}, "
                    "at its top or in its only folder): it is not a kgan preset archive."
                )
        replace_folder(root, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------- load
def read_metadata(folder):
    """`metadata.json` of a preset folder as a dict.

    Example:

    ```python
    meta = kgan.zoo.read_metadata(kgan.zoo.resolve("wgan_mnist"))
    meta["architecture"], meta["metrics"]["fcd"]  # ('wgan', ...)
    ```
    """
    path = Path(folder).expanduser() / METADATA_FILE
    if not path.is_file():
        raise ZooError(f"{folder} is not a preset folder: {METADATA_FILE} is missing.")
    return _read_json_object(path)


# Keyed by example values' types: this module's own `list` shadows the builtin.
_JSON_TYPES = {type([]): "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _read_json_object(path):
    """A preset's JSON file as a dict; `IntegrityError` naming the file if it is not one."""
    fix = _damaged_fix(Path(path).parent)
    try:
        value = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IntegrityError(f"{path} is not valid JSON ({err}). {fix}") from err
    if not isinstance(value, dict):
        raise IntegrityError(
            f"{path} holds a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}, not the "
            f"object a preset keeps there. {fix}"
        )
    return value


def file_sha256(path):
    """Hex sha256 of a file, read in chunks.

    Example:

    ```python
    folder = kgan.zoo.resolve("dcgan_mnist")
    digest = kgan.zoo.file_sha256(folder / "model.weights.h5")  # 64 hex digits
    digest == kgan.zoo.read_metadata(folder)["weights_sha256"]  # True
    ```
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load(source, sha256=None, cache_dir=None, allow_http=False, compile=False,  # noqa: A002
         timeout=None):
    """Load a pretrained model from a preset name, folder or URL.

    The weight file is checked against the sha256 in `metadata.json` before
    it is read, and the model is rebuilt from `config.json` in Keras safe mode.

    Args:
        source: registered name, preset folder, or https URL of an archive.
        sha256: full sha256 of the archive, for a URL.
        cache_dir: Keras cache root for downloads.
        allow_http: accept plain http URLs (local testing only).
        compile: compile with the architecture's default optimizers.
        timeout: seconds a download may wait for the server's next bytes
            before it fails (default `DOWNLOAD_TIMEOUT`, 60).

    Returns:
        The `kgan.models.GAN` subclass instance.

    Example:

    ```python
    gan = kgan.zoo.load("dcgan_mnist")
    kgan.images.save_grid(gan.generate(64, seed=0), "digits.png")
    ```
    """
    folder = resolve(source, sha256=sha256, cache_dir=cache_dir, allow_http=allow_http,
                     timeout=timeout)
    downloaded = _downloaded_entry(folder, source, cache_dir)
    identity = _identity(folder) if downloaded else None
    try:
        return _load_folder(folder, compile)
    except ZooError as err:
        # Downloaded for a URL, and its files are damaged or do not fit each
        # other: nothing refused stays cached. An error of the user's
        # environment (an architecture whose module is not imported yet, a
        # preset of a newer kgan) keeps the entry: the next load may work.
        if downloaded and _is_damage(err):
            _discard_cache_entry(folder, identity)
        raise


def _downloaded_entry(folder, source, cache_dir):
    """Whether `folder`, which `source` resolved to, is a download cache entry of a URL."""
    source = os.fspath(source)
    registered = _PRESETS.get(source)
    from_url = (source.startswith(("https://", "http://"))
                or (registered is not None and registered.path is None))
    entries = cache_root_dir(cache_dir) / "kgan" / "presets"
    return (from_url and _is_cache_entry(folder)
            and Path(folder).parent.resolve() == entries.resolve())


def _is_damage(err):
    """Whether the load error `err` is about the preset's files (missing, truncated, not
    matching their hash, weights not fitting the config), not about what this
    environment can build (a class not imported, a newer kgan's preset)."""
    return isinstance(err, IntegrityError) or getattr(err, "weights_do_not_fit", False)


def _identity(folder):
    """`(device, inode)` of `folder`, or None: which folder a path names right now."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _discard_cache_entry(folder, identity):
    """Delete the damaged cache entry `folder`, if it is still the one that was loaded.

    Another process may have fetched it anew meanwhile (its fresh entry is
    renamed over the path): that one stays. The entry is first renamed into
    a staging folder, so a concurrent fetch sees no entry and downloads it,
    and a killed process's leftover is swept like any staging folder.
    """
    if identity is None or _identity(folder) != identity:
        return
    try:
        aside = staging_dir(folder)
        os.replace(folder, aside / "damaged")
    except OSError:
        return  # gone already (another process discarded it), or not ours to move
    shutil.rmtree(aside, ignore_errors=True)


def _check_preset_files(folder, fix=None):
    """Check a preset folder's files before reading any weights; return its metadata.

    The config, weights and metadata must be there, the JSON files must be
    objects, and the weights must have the sha256 that `metadata.json`
    records. `fix` ends the messages (default: how to get a good copy).

    Raises:
        IntegrityError: a file is missing, unreadable or does not match its
            recorded hash.

    Example:

    ```python
    metadata = _check_preset_files(resolve("dcgan_mnist"))
    metadata["weights_sha256"]  # the sha256 model.weights.h5 was checked against
    ```
    """
    folder = Path(folder).expanduser()
    given_fix = fix
    fix = given_fix or _damaged_fix(folder)
    for required in (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE):
        if not (folder / required).is_file():
            raise IntegrityError(f"Preset folder {folder} is missing {required}. {fix}")
    metadata = read_metadata(folder)
    expected = metadata.get("weights_sha256")
    if not expected:
        raise IntegrityError(
            f"{folder / METADATA_FILE} records no weights_sha256, so {WEIGHTS_FILE} cannot be "
            f"checked. {fix}"
        )
    if not isinstance(expected, str):
        raise IntegrityError(
            f"{folder / METADATA_FILE} records weights_sha256 as {expected!r}, not a string of "
            f"64 hex digits. {fix}"
        )
    actual = file_sha256(folder / WEIGHTS_FILE)
    # Hex digests are case-free: some tools (e.g. PowerShell's Get-FileHash) print capitals.
    if expected.strip().lower() != actual:
        raise IntegrityError(
            f"{folder / WEIGHTS_FILE} has sha256 {actual}, but metadata.json "
            f"records {expected}: the file is corrupt or was replaced. "
            + (given_fix or _damaged_fix(folder, "Re-download or re-save the preset."))
        )
    return metadata


def _is_cache_entry(folder):
    """Whether `folder` is a downloaded preset: `<cache>/kgan/presets/<sha256>`."""
    folder = Path(folder)
    return (folder.parent.name == "presets" and folder.parent.parent.name == "kgan"
            and len(folder.name) == 64 and all(c in "0123456789abcdef" for c in folder.name))


def _damaged_fix(folder, local="The preset is damaged: re-download or re-save it."):
    """What to do about a damaged preset `folder`: `local`, but a cache entry is
    deleted and fetched again."""
    if _is_cache_entry(folder):
        return (f"The download cache entry is damaged: delete the folder {folder} and load "
                "the preset's URL again, which downloads it anew.")
    return local


def _load_folder(folder, compile):  # noqa: A002
    """`load` of a local preset folder."""
    metadata = _check_preset_files(folder)
    config = _read_json_object(folder / CONFIG_FILE)
    registered = config.get("registered_name") or ""
    if not isinstance(registered, str) or not registered.startswith("kgan>"):
        described = registered or config.get("class_name")
        if not described:
            raise ZooError(f"{folder / CONFIG_FILE} describes no model class, not a kgan model: "
                           "the preset is damaged; re-download or re-save it.")
        raise ZooError(
            f"{folder / CONFIG_FILE} describes {described!r}, not a kgan model: presets build "
            "only classes registered with "
            "@keras.saving.register_keras_serializable(package='kgan'). Register the class "
            "so, import it, and save the preset again."
        )
    arch = metadata.get("architecture")
    if arch is not None and not isinstance(arch, str):
        raise IntegrityError(
            f"{folder / METADATA_FILE} records architecture {arch!r}, not a name such as "
            f"'dcgan'. The preset is damaged: re-download or re-save it."
        )
    if arch in _ARCHITECTURES and _ARCHITECTURES[arch].cls.__name__ != config.get("class_name"):
        raise PresetMismatchError(
            f"Preset {folder} says architecture {arch!r} in {METADATA_FILE} but its "
            f"{CONFIG_FILE} builds {config.get('class_name')!r}; one of the two files was "
            "replaced. Restore the preset's original files, or re-save it with "
            "kgan.zoo.save_preset (which writes both from the model)."
        )
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)  # no Lambda code
    except Exception as err:
        _unsafe_or_raise(err, folder / CONFIG_FILE)
        raise PresetMismatchError(
            f"{folder / CONFIG_FILE} does not describe a model this kgan can build "
            f"({type(err).__name__}: {_one_line(err)}). If its class is your own "
            "architecture, import the module that registers it first; if the preset is from "
            "a newer kgan, upgrade kgan."
        ) from err
    try:
        # Keras only *warns* when it skips a group of the file, leaving those
        # layers at their random initialization: for a preset that is an error.
        # catch_warnings swaps process-wide state: two threads inside it at
        # once would record each other's warnings (and miss their own).
        with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(folder / WEIGHTS_FILE)
        skipped = [w for w in caught if "freshly-initialized" in str(w.message)]
        if skipped:
            raise ValueError(str(skipped[0].message))
        for w in caught:  # anything else is the caller's to see
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except OSError as err:  # h5py cannot read it: truncated or not HDF5
        raise IntegrityError(
            f"{folder / WEIGHTS_FILE} is not a readable weights file ({_one_line(err)}), "
            f"although its sha256 matches {METADATA_FILE}: it was damaged before the hash "
            "was recorded. Re-download the preset, or retrain it with the recipe in its "
            "metadata."
        ) from err
    except Exception as err:
        mismatch = PresetMismatchError(
            f"The weights in {folder / WEIGHTS_FILE} do not fit the {type(model).__name__} "
            f"that {CONFIG_FILE} describes ({_one_line(err)}): they were saved from another "
            "architecture or configuration. Keep a preset's config.json and model.weights.h5 "
            "together, or re-save it with kgan.zoo.save_preset."
        )
        mismatch.weights_do_not_fit = True  # damage, for `load` (`_is_damage`)
        raise mismatch from err
    if compile:
        model.compile()
    return model


def _one_line(err, limit=300):
    """An exception's message on one line (Keras' load errors span several)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + " ..."


# ---------------------------------------------------------------------- save
def _float32_policies(config):
    """Config with mixed-precision layer policies replaced by float32.

    Presets are stored portable: the variables are float32 either way, and a
    bf16 config would force bf16 compute on machines without fast bf16.
    """
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            name = config["config"].get("name", "")
            if name.startswith("mixed_"):
                return {**config, "config": {**config["config"], "name": "float32"}}
        return {k: _float32_policies(v) for k, v in config.items()}
    if isinstance(config, builtins.list):
        return [_float32_policies(v) for v in config]
    if config in ("mixed_bfloat16", "mixed_float16"):
        return "float32"
    return config


def portable_copy(model):
    """An uncompiled float32 copy of `model` for a preset, and its config.

    A preset holds what sampling and fine-tuning need, not training state: no
    optimizer slots, and with EMA enabled the averaged generator *is* the
    preset's generator (`ema_decay` is dropped from its config). The live
    generator's last weights are training state, like the optimizer's, and
    storing both generators would double the file for no use.

    Example:

    ```python
    gan = kgan.DCGAN.from_image_shape((28, 28, 1), latent_dim=16, filters=8, ema_decay=0.99)
    gan.compile()
    gan.fit(kgan.data.load("mnist_5k", batch_size=64).take(2), epochs=1)
    clone, config = kgan.zoo.portable_copy(gan)  # what save_preset writes
    config["config"]["ema_decay"]  # None: the clone's generator holds the EMA weights
    clone.generate(4, seed=0).shape  # (4, 28, 28, 1)
    ```
    """
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    # Without compile_config the clone is uncompiled: no optimizer slots.
    config.pop("compile_config", None)
    ema = getattr(model, "ema_generator", None)
    if ema is not None:
        config["config"]["ema_decay"] = None
    # Deserialization mutates nested configs in place: build from a copy.
    clone = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    # The clone's own config: the model's records the dtypes its tensors had
    # while it trained (bfloat16 between layers under mixed_bfloat16).
    config = keras.saving.serialize_keras_object(clone)
    config.pop("compile_config", None)  # None for the uncompiled clone
    # The random streams' positions are training state too; leaving them out
    # also keeps the weights layout every shipped preset has.
    clone.save_random_state = False
    # Other training state (CycleGAN's image pools) stays empty in the clone:
    # the class names the networks a preset holds.
    networks = getattr(model, "preset_networks", None)
    if networks is not None:
        for name in networks:
            getattr(clone, name).set_weights([np.asarray(w) for w in getattr(model, name).get_weights()])
    elif ema is None:
        clone.set_weights([np.asarray(w) for w in model.get_weights()])
    else:
        clone.generator.set_weights([np.asarray(w) for w in ema.get_weights()])
        clone.discriminator.set_weights([np.asarray(w) for w in model.discriminator.get_weights()])
    return clone, config


def save_preset(model, folder, metadata, overwrite=False, sample_seed=0, samples=None):
    """Write `model` as a preset folder, atomically.

    The folder is assembled under a temporary name next to `folder` and
    renamed into place, so an interrupted save leaves any previous preset
    intact. Parameter counts, shapes, the weights' sha256, the model card and
    the sample grid are filled in here; `metadata` supplies the rest
    (`name`, `description`, `dataset`, `recipe`, `license`, `metrics`, ...).

    Args:
        model: a `kgan.models.GAN`.
        folder: destination folder.
        metadata: dict of descriptive fields.
        overwrite: replace an existing folder.
        sample_seed: latent seed of `samples.png`.
        samples: images (`[N, H, W, C]`, [-1, 1] or uint8) for `samples.png`
            instead of generated ones (8 per row), a sheet `(images, ncols)`
            such as `CycleGAN.translation_sheet` returns, or the path of a
            PNG to copy as it is; required for models without a latent space
            (CycleGAN: e.g. inputs and their translations).

    Returns:
        The folder as a `Path`.

    Example:

    ```python
    gan = kgan.zoo.build("dcgan", image_shape=(28, 28, 1), latent_dim=16, filters=8)
    gan.compile()
    gan.fit(kgan.data.load("mnist_5k", batch_size=64).take(2), epochs=1, verbose=0)
    kgan.zoo.save_preset(gan, "my_dcgan", {"name": "my_dcgan", "dataset": "mnist_5k",
                         "description": "...", "recipe": "...", "license": "CC-BY-SA-3.0",
                         "metrics": {}})
    ```
    """
    from kgan import images as kgan_images

    if not isinstance(metadata, collections.abc.Mapping):
        raise TypeError(
            f"metadata must be a dict of the preset's descriptive fields (name, description, "
            f"dataset, recipe, license, metrics), got {type(metadata).__name__}."
        )
    folder = Path(folder).expanduser()
    check_not_installed_catalog(folder, "save a preset into")
    registered = keras.saving.get_registered_name(type(model))
    if not registered.startswith("kgan>"):
        # zoo.load builds only kgan-registered classes (safe loading).
        raise ZooError(
            f"Cannot save a preset of {registered!r}: zoo.load builds only classes registered "
            "with @keras.saving.register_keras_serializable(package='kgan'). Register the "
            "class so, or save the model with model.save('model.keras') instead."
        )
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists; pass overwrite=True to replace it.")
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder.")
    make_dirs(folder.parent)
    if not os.access(folder.parent, os.W_OK):
        raise OutputPathError(f"Cannot write in {folder.parent}; choose another output folder.")
    clone, config = portable_copy(model)
    from kgan.callbacks import DivergenceError, non_finite_variable

    bad = non_finite_variable(clone.weights)
    if bad is not None:  # never replace a good preset with a diverged model
        raise DivergenceError(
            f"Refusing to save a preset to {folder}: the weights are not finite "
            f"(NaN or Inf in {bad}); training diverged."
        )
    staging = staging_dir(folder)
    try:
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        clone.save_weights(staging / WEIGHTS_FILE)
        full = dict(metadata)
        full.setdefault("name", folder.name)
        full["architecture"] = full.get("architecture") or _architecture_name(model)
        full["class_name"] = type(model).__name__
        full["image_shape"] = builtins.list(model.image_shape)
        full["latent_dim"] = model.latent_dim
        if getattr(model, "num_classes", None) is not None:  # class-conditional
            full["num_classes"] = int(model.num_classes)
        full["parameters"] = {
            "generator": int(model.sampling_generator.count_params()),
            "discriminator": int(model.discriminator.count_params()),
        }
        full["weights_sha256"] = file_sha256(staging / WEIGHTS_FILE)
        full["weights_bytes"] = (staging / WEIGHTS_FILE).stat().st_size
        full.setdefault("metrics", {})
        full.setdefault("created", time.strftime("%Y-%m-%d"))
        missing = [k for k in REQUIRED_METADATA if k not in full]
        if missing:
            raise ValueError(f"metadata is missing {missing}; see kgan.zoo.REQUIRED_METADATA.")
        ncols = 8
        if isinstance(samples, tuple) and len(samples) == 2 and np.ndim(samples[1]) == 0:
            samples, ncols = samples  # a sheet and its row length
        if isinstance(samples, (str, os.PathLike)):  # a finished sheet, e.g. a re-saved preset's
            shutil.copyfile(samples, staging / SAMPLES_FILE)
        elif samples is None and hasattr(clone, "sample_sheet"):
            # Class-conditional models: one column per class, one latent per row.
            samples, ncols = clone.sample_sheet(seed=sample_seed)
        elif samples is None:  # models without latents (CycleGAN) must pass samples
            samples = clone.generate(64, seed=sample_seed)
        if not (staging / SAMPLES_FILE).exists():
            kgan_images.save_grid(samples, staging / SAMPLES_FILE, ncols=ncols)
        (staging / METADATA_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        (staging / CARD_FILE).write_text(render_model_card(full))
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def check_not_installed_catalog(folder, action="write into"):
    """Refuse to change a preset of the installed package's catalog.

    Installed (`pip install .`), the shipped presets are package data in
    `kgan/_catalog`: changing one rewrites the shipped figures for every user
    of that environment until the next reinstall silently undoes it. A source
    checkout's `zoo/` (an editable install) is the project's own and may be
    changed.

    Raises:
        ZooError: `folder` is inside the installed catalog; the message says
            to change a copy instead.

    Example:

    ```python
    kgan.zoo.check_not_installed_catalog("my_dcgan")  # a folder of yours: no error
    ```
    """
    installed = _installed_catalog()
    folder = Path(folder).expanduser().resolve()
    if installed.is_dir() and folder.is_relative_to(installed.resolve()):
        raise ZooError(
            f"Refusing to {action} {folder}: it is a preset of the installed kgan package, "
            f"which a reinstall overwrites. Copy it and change the copy (e.g. `cp -r {folder} "
            f"my_{folder.name}`, or shutil.copytree), or work in a source checkout "
            f"(pip install -e .) to change the repository's zoo/."
        )


def check_not_over_presets(target, action="write"):
    """Refuse an output folder that is, lies inside or holds a preset folder.

    Exports and other outputs are written beside their target and renamed
    over it, deleting what was there: a target that is a preset, or holds
    one (a `kgan train` output folder's `preset/`, or any folder directly
    inside it), would delete it; one inside a preset's folder would add
    files to it. A preset is a registered one, or any folder holding kgan's
    `metadata.json` or a `config.json` of a kgan model, registered or not.

    Raises:
        ZooError: naming the preset folder and saying to choose another
            path; also for any path inside the installed catalog
            (`check_not_installed_catalog`).

    Example:

    ```python
    kgan.zoo.check_not_over_presets("served/dcgan")  # no error
    kgan.zoo.check_not_over_presets(kgan.zoo.resolve("dcgan_mnist"))  # ZooError
    kgan.zoo.check_not_over_presets("runs/dcgan")  # ZooError: holds runs/dcgan/preset
    ```
    """
    check_not_installed_catalog(target, action)
    target = Path(target).expanduser()
    full = target.resolve()
    folders = [Path(p.path) for p in _PRESETS.values() if p.path is not None]
    # Presets of the user's own: the target or a folder holding it, ...
    folders += [folder for folder in (full, *full.parents) if _holds_preset_files(folder)]
    # ... a `kgan train` output's preset, or one directly inside the target.
    held = train_output_preset(full)
    if held is not None:
        folders.append(held)
    if full.is_dir() and not full.is_symlink():
        try:
            folders += [child for child in full.iterdir()
                        if child.is_dir() and _holds_preset_files(child)]
        except OSError:
            pass  # unreadable: what it holds cannot be told, nor replaced
    for folder in folders:
        relation = path_relation(target, folder)
        if relation:
            raise ZooError(
                f"Refusing to {action} {target}: it {relation} the preset folder {folder}, "
                "which the output would " + ("add files to" if relation == "lies inside"
                                             else "delete") + ". Choose a path outside it."
            )


def _holds_preset_files(folder):
    """Whether `folder` holds kgan's preset files: `metadata.json`, or the
    `config.json` of a kgan model (an unreadable one counts: it may be damaged)."""
    if (folder / METADATA_FILE).is_file():
        return True
    config = folder / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        registered = json.loads(config.read_text()).get("registered_name")
    except (OSError, ValueError, AttributeError):
        return True
    return isinstance(registered, str) and registered.startswith("kgan>")


def update_metadata(folder, updates):
    """Merge `updates` into a preset's metadata.json and re-render its card.

    Both files are written to temporary names and renamed, so an interrupted
    update leaves the previous pair intact. Fields derived from the weights
    (`weights_sha256`, `parameters`, ...) cannot be changed this way.

    Example:

    ```python
    import shutil
    folder = shutil.copytree(kgan.zoo.resolve("dcgan_mnist"), "my_dcgan")  # not the shipped one
    kgan.zoo.update_metadata(folder, {"notes": "Recipe chosen because ..."})["notes"]
    ```
    """
    folder = Path(folder).expanduser()
    check_not_installed_catalog(folder, "update the metadata of")
    clash = set(DERIVED_METADATA) & set(updates)
    if clash:
        raise ValueError(f"{sorted(clash)} are derived from the weights; re-save the preset instead.")
    metadata = read_metadata(folder)
    metadata.update(updates)
    texts = {
        METADATA_FILE: json.dumps(metadata, indent=2, sort_keys=True) + "\n",
        CARD_FILE: render_model_card(metadata),
    }
    # The two files change together: a copy of the folder (hard links to the
    # other files, so the weights are not copied) gets both and is swapped in
    # whole; renaming the files one by one could leave a new metadata.json
    # beside the old card.
    staging = staging_dir(folder)
    try:
        for path in folder.iterdir():
            if path.name not in texts:
                _link_or_copy(path, staging / path.name)
        for name, text in texts.items():
            (staging / name).write_text(text)
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def _link_or_copy(source, target):
    """Hard-link a file (copy where links are not possible); copy folders."""
    if source.is_dir():
        shutil.copytree(source, target)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _architecture_name(model):
    for arch in _ARCHITECTURES.values():
        if type(model) is arch.cls:
            return arch.name
    return type(model).__name__.lower()


def card_weights_and_recipe(metadata):
    """Card lines shared by presets and evaluators: weights, license, recipe.

    Example:

    ```python
    lines = kgan.zoo.card_weights_and_recipe(kgan.zoo.info("dcgan_mnist"))
    lines[0]   # '| weights | `model.weights.h5`, 4.71 MB, sha256 `<its 64 hex digits>` |'
    lines[-3]  # the recipe: 'kgan train dcgan --dataset mnist_5k ...'
    ```
    """
    m = metadata
    return [
        f"| weights | `{WEIGHTS_FILE}`, {m.get('weights_bytes', 0) / 1e6:.2f} MB, sha256 `{m['weights_sha256']}` |",
        f"| license | {m['license']} |",
        "",
        "## Recipe",
        "",
        "```sh",
        m["recipe"],
        "```",
        "",
    ]


def machine_summary():
    """The `training.machine` field of metadata: architecture, CPU count, OS.

    Example:

    ```python
    kgan.zoo.machine_summary()  # e.g. 'x86_64, 2 CPUs, Linux'
    ```
    """
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"


def render_model_card(metadata):
    """The model card (Markdown) of a preset, from its metadata.

    Example:

    ```python
    folder = kgan.zoo.resolve("dcgan_mnist")
    card = kgan.zoo.render_model_card(kgan.zoo.read_metadata(folder))
    card == (folder / "README.md").read_text()  # True: save_preset writes this text
    ```
    """
    m = metadata
    lines = [
        f"# {m['name']}",
        "",
        m.get("description", ""),
        "",
        "![samples](samples.png)",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{m['architecture']}` ({m.get('class_name', '')}) |",
        f"| dataset | {m['dataset']} |",
        f"| image shape | {tuple(m['image_shape'])} |",
        *_inputs_lines(m),
        f"| parameters | generator {m['parameters']['generator']:,}, discriminator {m['parameters']['discriminator']:,} |",
        *card_weights_and_recipe(m),
    ]
    training = m.get("training") or {}
    if training:
        lines += ["## Training", "", "| field | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(training.items())]
        lines.append("")
    lines += ["## Measured figures", ""]
    metrics = m.get("metrics") or {}
    evaluation = m.get("evaluation") or {}
    if evaluation.get("kind") == "translation":
        lines += _translation_lines(evaluation)
    elif metrics and evaluation:
        lines += _evaluation_lines(metrics, evaluation)
    elif metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(metrics.items())]
    else:
        lines.append("No quality figures measured yet.")
    lines.append("")
    if m.get("notes"):
        lines += ["## Notes", "", m["notes"], ""]
    return "\n".join(lines)


def _inputs_lines(metadata):
    """What the generator takes: a latent vector, or (translators) images of a domain."""
    if metadata.get("num_classes") is not None:
        return [f"| latent size | {metadata['latent_dim']} |",
                f"| classes | {metadata['num_classes']} (labels 0-{metadata['num_classes'] - 1}; "
                "samples.png has one column per class) |"]
    if metadata.get("latent_dim") is not None:
        return [f"| latent size | {metadata['latent_dim']} |"]
    parts = [p.strip() for p in str(metadata.get("dataset", "")).split("<->")]
    domain_a = metadata.get("dataset_a") or parts[0]
    domain_b = metadata.get("dataset_b") or parts[-1]
    return [f"| translates | A ({domain_a}) <-> B ({domain_b}), images of any size (trained at "
            f"{tuple(metadata['image_shape'])}) |"]


#: Rows of a translator's figures table: (key, label, which way is better).
_TRANSLATION_ROWS = (
    ("class_preservation", "class preservation (evaluator accuracy vs source labels)", "higher"),
    ("cycle_l1", "cycle reconstruction error (mean abs, [0, 1] pixels)", "lower"),
    ("fcd", "FCD of translations vs target domain", "lower"),
)


def _translation_lines(evaluation):
    """The figures of a translator: both directions and the real references."""
    protocol, directions, ref = evaluation["protocol"], evaluation["directions"], evaluation["reference"]
    lines = [
        f"{protocol['num']:,} images of each domain (A: {protocol['domain_a']}, B: "
        f"{protocol['domain_b']}, seed {protocol['seed']}), translated by the preset and read "
        f"by `{protocol['classifier']}` (resized to {tuple(protocol['resized_to'])}). Each FCD "
        f"compares {protocol['fcd_num']:,} images with the other half of the target domain's "
        "sample.",
        "",
        "| figure | A -> B | B -> A | better |",
        "|---|---|---|---|",
    ]
    for key, label, better in _TRANSLATION_ROWS:  # class figures need labels: "-" without
        lines.append(f"| {label} | {directions['a_to_b'].get(key, '-')} | "
                     f"{directions['b_to_a'].get(key, '-')} | {better} |")
    lines += [
        "",
        "References (real images, same protocol):",
        "",
        "| reference | A | B |",
        "|---|---|---|",
        f"| evaluator accuracy on the real domain | {ref.get('classifier_accuracy_real_a', '-')} "
        f"| {ref.get('classifier_accuracy_real_b', '-')} |",
        f"| FCD of untranslated images vs the other domain | {ref['fcd_untranslated_a_vs_b']} (A vs B) "
        f"| {ref['fcd_untranslated_b_vs_a']} (B vs A) |",
        f"| FCD real vs real (two halves of the domain's sample) | {ref['fcd_real_a_vs_real_a']} "
        f"| {ref['fcd_real_b_vs_real_b']} |",
        "",
        "Measured with:",
        "",
        "```sh",
        evaluation["command"],
        "```",
        "",
    ]
    return lines


def _evaluation_lines(metrics, evaluation):
    """The figures table of a card: this model, the real reference, comparisons."""
    protocol = evaluation["protocol"]
    columns = [("this model", metrics)]
    reference = evaluation.get("reference")
    if reference:
        columns.append((f"real vs real: {reference['source']}", reference["metrics"]))
    comparisons = evaluation.get("comparisons", [])
    columns += [(c["label"], c["metrics"]) for c in comparisons]
    lines = [
        f"{protocol['num']:,} images from each set, compared with {protocol['against']} "
        f"through the features of `{protocol['extractor']}` (seed {protocol['seed']}). "
        "FCD/FID and KID: lower is better; classifier score: higher is better (10 is "
        "the maximum for 10 classes); precision/recall: higher is better.",
        "",
        "| metric | " + " | ".join(name for name, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key in sorted(metrics):
        lines.append(f"| {key} | " + " | ".join(str(values.get(key, "-")) for _, values in columns) + " |")
    lines += ["", "Measured with:", "", "```sh", evaluation["command"]]
    if reference:
        lines.append("# (the --reference option measures the real-vs-real column)")
    lines += ["```", ""]
    for comparison in comparisons:
        lines += [f"{comparison['label']}:", "", "```sh", comparison["command"], "```", ""]
    return lines


# ---------------------------------------------------------------------- catalog
def catalog_dir():
    """The folder of shipped presets.

    Installed, the catalog is package data at `kgan/_catalog` (setup.cfg maps
    the repository's `zoo/` there); in a source checkout it is `zoo/`.

    Example:

    ```python
    sorted(p.name for p in kgan.zoo.catalog_dir().iterdir())  # [..., 'dcgan_mnist', ...]
    ```
    """
    installed = _installed_catalog()
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "zoo"


def _installed_catalog():
    """Where `pip install .` puts the shipped presets (setup.cfg's `kgan._catalog`)."""
    return Path(__file__).resolve().parent / "_catalog"


def _register_catalog():
    root = catalog_dir()
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        # Dot-folders are staging copies of an interrupted save, not presets.
        if not folder.name.startswith(".") and (folder / METADATA_FILE).is_file():
            description = read_metadata(folder).get("description", "")
            register_preset(folder.name, path=folder, description=description)



#: Figures shown in the README table (the card has them all), in this order.
_TABLE_FIGURES = (
    "fcd", "fid", "classifier_score", "inception_score", "precision", "recall", "label_agreement",
    "a_to_b_class_preservation", "a_to_b_fcd", "b_to_a_fcd",
)


def markdown_table():
    """The README's zoo table, generated from every preset's metadata.

    `tests/test_zoo.py` fails when README.md's table differs from this; print
    it with `kgan list --markdown` and paste it between the README markers.

    Example:

    ```python
    print(kgan.zoo.markdown_table())  # | preset | architecture | dataset | ... one row each
    ```
    """
    rows = [
        "| preset | architecture | dataset | image | generator params | weights | figures |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in list():
        m = read_metadata(resolve(name))
        metrics = m.get("metrics") or {}
        figures = ", ".join(f"{k} {metrics[k]}" for k in _TABLE_FIGURES if k in metrics) or "-"
        shape = "x".join(str(d) for d in m["image_shape"])
        rows.append(
            f"| [{name}](zoo/{name}/README.md) | {m['architecture']} | {m['dataset']} | {shape} "
            f"| {m['parameters']['generator']:,} | {m.get('weights_bytes', 0) / 1e6:.1f} MB | {figures} |"
        )
    return "\n".join(rows)


_register_catalog()
