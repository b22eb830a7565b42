"""Safe loading: what kgan refuses to fetch, cache, extract or deserialize.

`tests/test_zoo.py` covers the basics (a verified download is cached and
served offline; plain http needs `allow_http`; a short hash is refused; a
hash mismatch leaves nothing cached; `../` and absolute archive members are
refused). This file adds the rest of the guarantee:

* plain http is refused *before any request* (no byte is fetched), for URLs,
  registered presets and the CLI;
* a failed or mismatching download caches nothing, and does not poison the
  cache for the right hash;
* a correctly hashed archive with unsafe members (path traversal, symlinks
  or hard links escaping it, device files) is refused and leaves nothing
  behind, neither outside the cache nor in it;
* weights are verified on every load, not only after download;
* model files are deserialized in Keras safe mode: a Lambda layer (pickled
  Python bytecode) in a preset's config or a `.keras` extractor is refused
  with `kgan.zoo.UnsafeContentError`, and a config naming a non-Keras module
  never imports it.

The server is `http.server` on 127.0.0.1 in a thread of the test process.
"""

import functools
import hashlib
import http.server
import io
import json
import re
import shutil
import sys
import tarfile
import threading
from pathlib import Path

import keras
import pytest

from kgan import cli, evaluators, zoo
from kgan_test_utils import TINY_METADATA, tiny_dcgan


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return zoo.save_preset(tiny_dcgan(spread=True), tmp_path_factory.mktemp("safe") / "tiny", TINY_METADATA)


class _Server:
    """A static file server on 127.0.0.1 that counts the requests it gets."""

    def __init__(self, root):
        self.root, self.requests = root, []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def publish(self, name, data):
        (self.root / name).write_bytes(data)
        return f"{self.base}/{name}", hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    served = _Server(root)
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


def archive_of(folder, arcname="tiny"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return buffer.getvalue()


def files_under(folder):
    """Every file, link or other non-folder entry under `folder`."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())


# ---------------------------------------------------------------- https only
def test_plain_http_is_refused_before_any_request(preset, server, tmp_path, capsys):
    url, digest = server.publish("tiny.tar.gz", archive_of(preset))
    cache = tmp_path / "cache"
    with pytest.raises(zoo.ZooError, match=r"Refusing plain-http URL .*use https.*allow_http=True"):
        zoo.load(url, sha256=digest, cache_dir=cache)
    zoo.register_preset("test_safe_http", url=url, sha256=digest)
    try:
        with pytest.raises(zoo.ZooError, match="plain-http"):
            zoo.load("test_safe_http", cache_dir=cache)
    finally:
        zoo.unregister_preset("test_safe_http")
    assert cli.main(["sample", url, "--sha256", digest, "--output", str(tmp_path / "x.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kgan: error: Refusing plain-http URL")
    assert "the command line takes https only" in lines[0]  # no flag it cannot pass
    assert server.requests == []  # refused before connecting, not after downloading
    assert not cache.exists() and not (tmp_path / "x.png").exists()
    # allow_http is the explicit opt-in (a server you trust, such as this one).
    assert zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True).latent_dim == 8
    assert server.requests == ["/tiny.tar.gz"]


@pytest.mark.parametrize("sha256", [None, "", "0" * 32, "0" * 40, "g" * 64, "0" * 65])
def test_a_remote_preset_needs_a_full_sha256(server, tmp_path, sha256):
    with pytest.raises(zoo.ZooError, match=r"full sha256 \(64 hex characters\)"):
        zoo.load(f"{server.base}/x.tar.gz", sha256=sha256, cache_dir=tmp_path, allow_http=True)
    with pytest.raises(zoo.ZooError, match="64 hex"):
        zoo.register_preset("test_safe_short_hash", url="https://example.invalid/x.tar.gz", sha256=sha256)
    assert server.requests == [] and "test_safe_short_hash" not in zoo.list()


# ---------------------------------------------------------------- verified before use, never cached when bad
def test_a_mismatching_download_is_not_cached_and_does_not_poison_the_cache(preset, server, tmp_path):
    url, digest = server.publish("tiny.tar.gz", archive_of(preset))
    cache = tmp_path / "cache"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(zoo.IntegrityError, match=r"does not match sha256 .*deleted.*Check the URL and the hash"):
        zoo.load(url, sha256=wrong, cache_dir=cache, allow_http=True)
    assert files_under(cache) == []
    # The right hash downloads again and verifies; nothing stale is reused.
    model = zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True)
    assert model.latent_dim == 8
    assert files_under(cache / "kgan" / "presets" / digest) == sorted(zoo.PRESET_FILES)
    assert not list(cache.rglob("*.tar.gz"))  # only the verified extraction is kept


def test_a_failed_download_caches_nothing(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(zoo.ZooError, match=r"Could not download preset from .*missing.tar.gz"):
        zoo.load(f"{server.base}/missing.tar.gz", sha256="0" * 64, cache_dir=cache, allow_http=True)
    assert files_under(cache) == []


def test_weights_are_verified_on_every_load_not_only_after_download(preset, server, tmp_path):
    url, digest = server.publish("tiny.tar.gz", archive_of(preset))
    cache = tmp_path / "cache"
    folder = zoo.resolve(url, sha256=digest, cache_dir=cache, allow_http=True)
    weights = folder / zoo.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, after it was verified and cached
    weights.write_bytes(bytes(data))
    # Read as a folder, the damage is refused, naming the cache entry to delete.
    with pytest.raises(zoo.IntegrityError, match=rf"corrupt or was replaced.*delete the folder "
                       rf"{re.escape(str(folder))} and load the preset's URL again"):
        zoo.load(folder)
    # Loaded by its URL, the damaged entry is downloaded again (see test_zoo).
    with pytest.warns(UserWarning, match="Downloading .* again: .*corrupt or was replaced"):
        assert zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True).latent_dim == 8
    assert len(server.requests) == 2 and zoo.file_sha256(weights) == zoo.read_metadata(
        folder)["weights_sha256"]


# ---------------------------------------------------------------- archive extraction
def _member(name, kind="file", target=""):
    info = tarfile.TarInfo(name)
    if kind == "file":
        info.size = 4
        return info, io.BytesIO(b"evil")
    info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                 "device": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    info.linkname = target
    return info, None


UNSAFE_MEMBERS = {
    "parent_traversal": (("../evil.txt", "file", ""), "unsafe path"),
    "nested_traversal": (("tiny/../../evil.txt", "file", ""), "unsafe path"),
    "absolute_path": (("/tmp/kgan_evil.txt", "file", ""), "unsafe path"),
    "symlink_escaping_relative": (("tiny/config.json", "symlink", "../../../evil.txt"), "not a plain file"),
    "symlink_to_absolute_path": (("tiny/model.weights.h5", "symlink", "/etc/passwd"), "not a plain file"),
    "symlink_inside_the_archive": (("tiny/link", "symlink", "metadata.json"), "not a plain file"),
    "hardlink_to_absolute_path": (("tiny/README.md", "hardlink", "/etc/passwd"), "not a plain file"),
    "character_device": (("tiny/null", "device", ""), "not a plain file"),
    "fifo": (("tiny/pipe", "fifo", ""), "not a plain file"),
}


@pytest.mark.parametrize("member, message", UNSAFE_MEMBERS.values(), ids=UNSAFE_MEMBERS.keys())
def test_unsafe_archive_members_are_refused_and_leave_nothing(preset, server, tmp_path, member, message):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(preset, arcname="tiny")  # an otherwise valid preset ...
        tar.addfile(*_member(*member))  # ... with one bad member
    url, digest = server.publish("bad.tar.gz", buffer.getvalue())
    cache = tmp_path / "deep" / "er" / "cache"
    with pytest.raises(zoo.ZooError, match=rf"Refusing archive member .*{message}"):
        zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True)
    # Nothing escaped, and the hash-verified but refused archive is not cached.
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/kgan_evil.txt").exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert files_under(cache) == []


def test_an_archive_without_a_preset_is_refused(server, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.addfile(*_member("notes.txt"))
    url, digest = server.publish("empty.tar.gz", buffer.getvalue())
    cache = tmp_path / "cache"
    with pytest.raises(zoo.ZooError, match="holds no preset folder"):
        zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True)
    assert files_under(cache) == []


# ---------------------------------------------------------------- safe mode
def _lambda_generator(sentinel):
    """A generator whose Lambda layer would create `sentinel` if its code ever ran."""
    path = str(sentinel)

    def touch_and_tanh(x):
        open(path, "w").close()  # the "payload": observable if executed
        return keras.ops.tanh(x)

    latents = keras.Input((8,))
    x = keras.layers.Dense(16 * 16)(latents)
    x = keras.layers.Lambda(lambda t: touch_and_tanh(t), output_shape=(256,))(x)
    return keras.Model(latents, keras.layers.Reshape((16, 16, 1))(x))


def _with_generator_config(preset, tmp_path, generator_config):
    folder = Path(shutil.copytree(preset, tmp_path / "tampered"))
    config = json.loads((folder / zoo.CONFIG_FILE).read_text())
    config["config"]["generator"] = generator_config
    (folder / zoo.CONFIG_FILE).write_text(json.dumps(config))
    return folder


def test_a_preset_with_a_lambda_layer_is_refused(preset, tmp_path, capsys):
    sentinel = tmp_path / "payload_ran"
    generator = _lambda_generator(sentinel)
    sentinel.unlink(missing_ok=True)  # building the layer ran it once, here, on purpose
    folder = _with_generator_config(preset, tmp_path, keras.saving.serialize_keras_object(generator))
    with pytest.raises(zoo.UnsafeContentError, match=r"Refusing to load .*config.json.*Lambda.*safe mode"):
        zoo.load(folder)
    assert cli.main(["sample", str(folder), "--output", str(tmp_path / "x.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Refusing to load" in lines[0] and "registered layers" in lines[0]
    assert not sentinel.exists()


def test_a_keras_file_with_a_lambda_layer_is_refused_as_extractor(tmp_path):
    sentinel = tmp_path / "payload_ran"
    path = str(sentinel)  # Keras serializes the closure: keep it a plain string
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        keras.layers.Lambda(lambda t: (open(path, "w").close(), t)[1]),
        keras.layers.Dense(10),
    ])
    sentinel.unlink(missing_ok=True)
    model.save(tmp_path / "extractor.keras")
    with pytest.raises(zoo.UnsafeContentError, match=r"extractor.keras.*Lambda.*safe_mode=False"):
        evaluators.extractor_for((28, 28, 1), str(tmp_path / "extractor.keras"))
    assert not sentinel.exists()


def test_a_config_naming_a_foreign_module_never_imports_it(preset, tmp_path, monkeypatch):
    module = "kgan_test_evil_module"
    sentinel = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(f"open({str(sentinel)!r}, 'w').close()\nclass Evil: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    generator = keras.saving.serialize_keras_object(tiny_dcgan().generator)
    layer = generator["config"]["layers"][1]
    layer.update({"module": module, "class_name": "Evil", "registered_name": None})
    folder = _with_generator_config(preset, tmp_path, generator)
    with pytest.raises(zoo.PresetMismatchError, match=r"config.json does not describe a model"):
        zoo.load(folder)
    assert not sentinel.exists() and module not in sys.modules


def test_shipped_presets_hold_no_lambda_layers():
    """Nothing shipped needs unsafe deserialization, so safe mode costs users nothing."""
    for name in zoo.list():
        config = (zoo.resolve(name) / zoo.CONFIG_FILE).read_text()
        assert not re.search(r'"class_name": "Lambda"', config), name
