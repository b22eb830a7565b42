"""The zoo: registries, preset save/load, integrity, remote fetch, the catalog."""

import errno
import functools
import http.server
import io
import json
import re
import shutil
import ssl
import tarfile
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import kgan
from kgan_test_utils import TINY_METADATA, spread_weights
from kgan import zoo
from kgan.models import DCGAN


def tiny_model():
    return DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0)


METADATA = TINY_METADATA


@pytest.fixture
def preset(tmp_path):
    model = tiny_model()
    folder = zoo.save_preset(model, tmp_path / "tiny", METADATA)
    return model, folder


# ---------------------------------------------------------------- registry
def test_list_and_architectures():
    assert "dcgan" in zoo.list(kind="architectures")
    assert zoo.list("dcgan*", kind="architectures") == ["dcgan"]
    assert zoo.list("no-such-*") == []
    with pytest.raises(ValueError, match="kind"):
        zoo.list(kind="weights")


def test_registering_a_name_twice_raises(tmp_path):
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_architecture("dcgan", DCGAN)
    zoo.register_preset("test_dup", path=tmp_path)
    try:
        with pytest.raises(ValueError, match="already registered"):
            zoo.register_preset("test_dup", path=tmp_path)
    finally:
        zoo.unregister_preset("test_dup")


def test_unknown_names_suggest_close_matches():
    with pytest.raises(zoo.UnknownNameError, match="Did you mean 'dcgan'"):
        zoo.build("dcgn")
    with pytest.raises(zoo.UnknownNameError, match="Unknown preset 'dcgan_mnst'.*Did you mean 'dcgan_mnist'"):
        zoo.load("dcgan_mnst")
    with pytest.raises(zoo.UnknownNameError, match="Unknown preset 'dcgan_mnst'.*Did you mean 'dcgan_mnist'"):
        zoo.unregister_preset("dcgan_mnst")
    assert "dcgan_mnist" in zoo.list()


def test_build_by_name():
    model = zoo.build("dcgan", image_shape=(32, 32, 3), latent_dim=16, filters=4)
    assert model.image_shape == (32, 32, 3) and model.latent_dim == 16


# ---------------------------------------------------------------- save / load
def test_save_and_load_preset(preset):
    model, folder = preset
    assert sorted(p.name for p in folder.iterdir()) == sorted(zoo.PRESET_FILES)
    metadata = zoo.read_metadata(folder)
    for key in zoo.REQUIRED_METADATA:
        assert key in metadata
    assert metadata["weights_sha256"] == zoo.file_sha256(folder / zoo.WEIGHTS_FILE)
    assert metadata["image_shape"] == [16, 16, 1] and metadata["latent_dim"] == 8
    assert metadata["parameters"]["generator"] == model.generator.count_params()
    loaded = zoo.load(folder)
    np.testing.assert_allclose(loaded.generate(4, seed=1), model.generate(4, seed=1), atol=1e-6)
    assert "# tiny" in (folder / "README.md").read_text()
    assert kgan.images.load_png(folder / "samples.png").shape == (8 * 18 + 2, 8 * 18 + 2, 1)
    # No staging folders are left next to the preset.
    assert [p.name for p in folder.parent.iterdir()] == ["tiny"]


def test_weights_exclude_optimizer_state(tmp_path):
    model = tiny_model()
    model.compile()
    model.fit(np.zeros((8, 16, 16, 1), "float32"), batch_size=4, verbose=0)
    folder = zoo.save_preset(model, tmp_path / "p", METADATA)
    plain = zoo.save_preset(tiny_model(), tmp_path / "q", METADATA)
    size = (folder / zoo.WEIGHTS_FILE).stat().st_size
    assert size == pytest.approx((plain / zoo.WEIGHTS_FILE).stat().st_size, rel=0.05)


def test_save_preset_refuses_existing_folder_unless_overwrite(preset):
    model, folder = preset
    before = zoo.file_sha256(folder / zoo.WEIGHTS_FILE)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.save_preset(model, folder, METADATA)
    assert zoo.file_sha256(folder / zoo.WEIGHTS_FILE) == before
    other = tiny_model()
    other.generator.layers[1].kernel.assign(other.generator.layers[1].kernel * 2)
    zoo.save_preset(other, folder, METADATA, overwrite=True)
    assert zoo.file_sha256(folder / zoo.WEIGHTS_FILE) != before


def test_save_preset_requires_metadata(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        zoo.save_preset(tiny_model(), tmp_path / "x", {"name": "x"})
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []


def test_mixed_precision_model_saves_a_float32_preset(tmp_path):
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = tiny_model()
    keras.mixed_precision.set_global_policy("float32")
    folder = zoo.save_preset(model, tmp_path / "bf16", METADATA)
    config = (folder / zoo.CONFIG_FILE).read_text()
    assert "mixed_bfloat16" not in config
    # Nor the bfloat16 tensors between its layers (the model's own config records them).
    assert "bfloat16" not in config
    loaded = zoo.load(folder)
    assert loaded.generator.layers[1].compute_dtype == "float32"


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_weights_are_refused(preset, damage):
    _, folder = preset
    weights = folder / zoo.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    weights.write_bytes(bytes(data))
    with pytest.raises(zoo.IntegrityError, match="sha256.*corrupt"):
        zoo.load(folder)


def test_non_kgan_config_is_refused(preset):
    _, folder = preset
    config = json.loads((folder / zoo.CONFIG_FILE).read_text())
    config["registered_name"] = "evil>Thing"
    (folder / zoo.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(zoo.ZooError, match="not a kgan model.*package='kgan'"):
        zoo.load(folder)


def test_a_preset_of_a_class_zoo_load_cannot_build_is_refused_when_saved(tmp_path):
    # save_preset wrote it, and zoo.load then refused it and advised save_preset.
    import keras

    @keras.saving.register_keras_serializable(package="myorg")
    class OrgDCGAN(DCGAN):
        pass

    model = OrgDCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0)
    with pytest.raises(zoo.ZooError, match="'myorg>OrgDCGAN'.*package='kgan'.*model.keras"):
        zoo.save_preset(model, tmp_path / "org", METADATA)
    assert not (tmp_path / "org").exists()


@pytest.mark.parametrize("file, key, value, error, message", [
    (zoo.CONFIG_FILE, "registered_name", 123, zoo.ZooError, "describes 123, not a kgan model"),
    (zoo.METADATA_FILE, "architecture", ["dcgan"], zoo.IntegrityError,
     r"architecture \['dcgan'\], not a name"),
    (zoo.METADATA_FILE, "weights_sha256", 7, zoo.IntegrityError, "weights_sha256 as 7, not a string"),
])
def test_fields_of_the_wrong_json_type_are_named(preset, file, key, value, error, message):
    # Valid JSON, wrong types: each must be a ZooError naming the field, not a
    # raw AttributeError or TypeError from inside load.
    _, folder = preset
    content = json.loads((folder / file).read_text())
    content[key] = value
    (folder / file).write_text(json.dumps(content))
    with pytest.raises(error, match=message):
        zoo.load(folder)


def test_weights_sha256_in_capitals_is_the_same_digest(preset):
    model, folder = preset
    metadata = json.loads((folder / zoo.METADATA_FILE).read_text())
    metadata["weights_sha256"] = metadata["weights_sha256"].upper()  # as PowerShell prints it
    (folder / zoo.METADATA_FILE).write_text(json.dumps(metadata))
    loaded = zoo.load(folder)
    np.testing.assert_array_equal(loaded.generate(2, seed=0), model.generate(2, seed=0))


@pytest.mark.parametrize("metadata", ["notadict", None, [("name", "x")]])
def test_save_preset_refuses_metadata_that_is_not_a_dict(tmp_path, metadata):
    with pytest.raises(TypeError, match="metadata must be a dict"):
        zoo.save_preset(tiny_model(), tmp_path / "x", metadata)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_preset_name_is_refused_not_read_as_the_current_folder():
    for name in ("", "  "):
        with pytest.raises(zoo.ZooError, match="preset name is empty"):
            zoo.load(name)


def test_missing_files_and_paths(tmp_path):
    with pytest.raises(zoo.ZooError, match="does not exist"):
        zoo.load(str(tmp_path / "nowhere") + "/")
    (tmp_path / "empty").mkdir()
    with pytest.raises(zoo.ZooError, match="missing config.json"):
        zoo.load(tmp_path / "empty")


def test_a_train_output_folder_names_the_preset_inside_it(preset, tmp_path):
    _, folder = preset
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    shutil.copytree(folder, run / "preset")
    assert zoo.train_output_preset(run) == run / "preset"
    assert zoo.train_output_preset(run / "preset") is None
    for read in (zoo.load, zoo.resolve, zoo.info):
        with pytest.raises(zoo.ZooError, match=r"`kgan train` output folder.*its preset is .*run/preset"):
            read(run)
    zoo.load(run / "preset")


# ---------------------------------------------------------------- remote
def _archive(folder, arcname="tiny"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return buffer.getvalue()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _sha256(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _served(preset, http_server):
    """`preset`'s folder served as a .tar.gz by `http_server`: `(url, sha256)`."""
    _, folder = preset
    root, base = http_server
    data = _archive(folder)
    (root / "tiny.tar.gz").write_bytes(data)
    return f"{base}/tiny.tar.gz", _sha256(data)


def test_remote_preset_is_fetched_verified_and_cached(preset, http_server, tmp_path):
    model, _ = preset
    (url, digest), cache = _served(preset, http_server), tmp_path / "cache"
    with pytest.raises(zoo.ZooError, match="plain-http"):
        zoo.load(url, sha256=digest, cache_dir=cache)
    with pytest.raises(zoo.ZooError, match="64 hex"):
        zoo.load(url, sha256=digest[:32], cache_dir=cache, allow_http=True)
    with pytest.raises(zoo.ZooError, match=r"pass sha256=\.\.\. \(on the command line, --sha256"):
        zoo.load(url, cache_dir=cache, allow_http=True)
    loaded = zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True)
    np.testing.assert_allclose(loaded.generate(2, seed=0), model.generate(2, seed=0), atol=1e-6)
    assert (cache / "kgan" / "presets" / digest / zoo.CONFIG_FILE).is_file()
    assert list(cache.rglob("*.tar.gz")) == []
    # Second load is served from the cache, even with the server gone.
    (http_server[0] / "tiny.tar.gz").unlink()
    assert zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True).latent_dim == 8


def test_registered_remote_preset(preset, http_server, tmp_path):
    _, folder = preset
    root, base = http_server
    data = _archive(folder)
    (root / "r.tar.gz").write_bytes(data)
    zoo.register_preset("test_remote", url=f"{base}/r.tar.gz", sha256=_sha256(data))
    try:
        folder = zoo.resolve("test_remote", cache_dir=tmp_path / "c", allow_http=True)
        assert (folder / zoo.CONFIG_FILE).is_file()
        # info refused every plain-http preset: it had no allow_http.
        info = zoo.info("test_remote", cache_dir=tmp_path / "c", allow_http=True)
        assert info["location"] == str(folder)
    finally:
        zoo.unregister_preset("test_remote")


def test_hash_mismatch_leaves_nothing_in_the_cache(preset, http_server, tmp_path):
    _, folder = preset
    root, base = http_server
    (root / "tiny.tar.gz").write_bytes(_archive(folder))
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(zoo.IntegrityError, match="does not match sha256"):
        zoo.load(f"{base}/tiny.tar.gz", sha256=wrong, cache_dir=cache, allow_http=True)
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt"])
def test_unsafe_archives_are_refused(http_server, tmp_path, member):
    root, base = http_server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    data = buffer.getvalue()
    (root / "bad.tar.gz").write_bytes(data)
    with pytest.raises(zoo.ZooError, match="unsafe path"):
        zoo.load(f"{base}/bad.tar.gz", sha256=_sha256(data), cache_dir=tmp_path / "c", allow_http=True)
    assert not (tmp_path / "evil.txt").exists()


# ---------------------------------------------------------------- the catalog
CATALOG = zoo.list()


def test_the_catalog_is_not_empty():
    assert "dcgan_mnist" in CATALOG


@pytest.mark.parametrize("name", CATALOG)
def test_catalog_entry(name):
    folder = zoo.resolve(name)
    metadata = zoo.read_metadata(folder)
    for key in zoo.REQUIRED_METADATA:
        assert key in metadata, key
    assert metadata["name"] == name == Path(folder).name
    assert metadata["architecture"] in zoo.list(kind="architectures")
    assert metadata["recipe"].startswith("kgan train ")
    assert metadata["weights_sha256"] == zoo.file_sha256(folder / zoo.WEIGHTS_FILE)
    assert (folder / zoo.WEIGHTS_FILE).stat().st_size < 8 * 2**20, "keep shipped weights small"
    training = metadata["training"]
    assert training["wall_time_s"] > 0 and training["images_per_s_median_epoch"] > 0
    model = zoo.load(name)
    assert list(model.image_shape) == metadata["image_shape"]
    assert model.latent_dim == metadata["latent_dim"]
    assert model.generator.count_params() == metadata["parameters"]["generator"]
    if metadata["latent_dim"] is None:  # a translator: images in, images out
        inputs = np.random.default_rng(0).uniform(-1, 1, (8, *metadata["image_shape"]))
        images = model.translate(inputs.astype("float32"), direction="a_to_b")
    else:
        images = model.generate(8, seed=0)
    assert images.shape == (8,) + tuple(metadata["image_shape"])
    assert np.isfinite(images).all() and images.std() > 0.1
    assert (folder / zoo.SAMPLES_FILE).is_file()
    card = (folder / zoo.CARD_FILE).read_text()
    assert metadata["recipe"] in card and metadata["weights_sha256"] in card


def test_readme_zoo_table_is_generated_from_metadata():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("<!-- zoo-table:start -->\n")[1].split("\n<!-- zoo-table:end -->")[0]
    assert table == zoo.markdown_table(), "run `kgan list --markdown` and paste it into README.md"


def test_preset_folder_has_ordinary_permissions(preset):
    import os
    import stat

    _, folder = preset
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask


def test_update_metadata_rewrites_metadata_and_card(preset):
    _, folder = preset
    weights = (folder / zoo.WEIGHTS_FILE).read_bytes()
    images = zoo.load(folder).generate(4, seed=0)
    zoo.update_metadata(folder, {"notes": "chosen for a reason", "metrics": {"fid": 1.5}})
    metadata = zoo.read_metadata(folder)
    assert metadata["notes"] == "chosen for a reason" and metadata["metrics"] == {"fid": 1.5}
    card = (folder / zoo.CARD_FILE).read_text()
    assert "chosen for a reason" in card and "| fid | 1.5 |" in card
    with pytest.raises(ValueError, match="derived from the weights"):
        zoo.update_metadata(folder, {"weights_sha256": "0" * 64})
    # The weights and the model are untouched (it only checked that the preset loads).
    assert (folder / zoo.WEIGHTS_FILE).read_bytes() == weights
    np.testing.assert_array_equal(zoo.load(folder).generate(4, seed=0), images)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_the_installed_catalog_is_not_changed_in_place(preset, tmp_path, monkeypatch):
    # Installed (pip install .), shipped presets are package data: a card
    # update or re-save there is undone by the next reinstall.
    model, folder = preset
    catalog = tmp_path / "site-packages" / "kgan" / "_catalog"
    shipped = catalog / "tiny"
    shutil.copytree(folder, shipped)
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    monkeypatch.setattr(zoo, "_installed_catalog", lambda: catalog)
    assert zoo.catalog_dir() == catalog
    with pytest.raises(zoo.ZooError, match="installed kgan package.*Copy it"):
        zoo.update_metadata(shipped, {"notes": "mine"})
    with pytest.raises(zoo.ZooError, match="installed kgan package"):
        zoo.save_preset(model, shipped, METADATA, overwrite=True)
    with pytest.raises(zoo.ZooError, match="installed kgan package"):
        zoo.save_preset(model, catalog / "new", METADATA)
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    assert sorted(p.name for p in catalog.iterdir()) == ["tiny"]
    copy = shutil.copytree(shipped, tmp_path / "my_tiny")  # what the message says to do
    assert zoo.update_metadata(copy, {"notes": "mine"})["notes"] == "mine"


def test_ema_preset_stores_the_averaged_generator_once(tmp_path):
    model = DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0, ema_decay=0.9)
    spread_weights(model)  # live generator now differs from the EMA copy
    folder = zoo.save_preset(model, tmp_path / "ema", METADATA)
    plain = zoo.save_preset(tiny_model(), tmp_path / "plain", METADATA)
    assert (folder / zoo.WEIGHTS_FILE).stat().st_size == pytest.approx(
        (plain / zoo.WEIGHTS_FILE).stat().st_size, rel=0.05)
    loaded = zoo.load(folder)
    assert loaded.ema_generator is None
    np.testing.assert_allclose(loaded.generate(3, seed=2), model.generate(3, seed=2), atol=1e-6)


@pytest.mark.parametrize("source", [None, 3])
def test_a_preset_named_by_neither_string_nor_path_says_what_names_one(source):
    with pytest.raises(TypeError, match=r"a registered name \(kgan.zoo.list\(\)\), a preset folder"):
        zoo.load(source)


def test_build_with_an_int_image_shape_says_the_shape_it_takes():
    with pytest.raises(ValueError, match=r"must be \(height, width, channels\), e.g. \(28, 28, 1\), got 28"):
        zoo.build("dcgan", image_shape=28)


def test_concurrent_fetches_of_one_preset_both_load(preset, http_server, tmp_path):
    # Each fetch downloads to a file of its own: a shared name let one
    # process verify, or delete, the file another was still writing.
    (url, digest), cache = _served(preset, http_server), tmp_path / "cache"
    results = [None] * 4

    def fetch(i):
        try:
            results[i] = zoo.resolve(url, sha256=digest, cache_dir=cache, allow_http=True)
        except Exception as err:  # noqa: BLE001 - reported below
            results[i] = err

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, Path) and (r / zoo.CONFIG_FILE).is_file() for r in results), results
    assert sorted(p.name for p in (cache / "kgan").iterdir()) == ["presets"]  # no archive left


def test_a_fetch_into_a_cache_dir_not_made_yet_stays_in_it(preset, http_server, tmp_path):
    # keras.utils.get_file falls back to /tmp/.keras for a folder that does not exist.
    (url, digest), cache = _served(preset, http_server), tmp_path / "not" / "made" / "yet"
    got = zoo.resolve(url, sha256=digest, cache_dir=cache, allow_http=True)
    assert cache in got.parents


def test_a_remote_preset_that_is_not_a_tar_archive_is_a_zoo_error(http_server, tmp_path):
    root, base = http_server
    data = b"PK\x03\x04 a zip, not a tar"
    (root / "p.zip").write_bytes(data)
    with pytest.raises(zoo.ZooError, match="not a tar file"):
        zoo.resolve(f"{base}/p.zip", sha256=_sha256(data), cache_dir=tmp_path / "c",
                    allow_http=True)
    assert not list((tmp_path / "c" / "kgan").glob("*.tar.gz"))


def test_a_preset_registered_with_a_folder_that_is_gone_says_so(tmp_path):
    # It said "Preset folder ... is missing config.json" of a folder that does not exist.
    zoo.register_preset("gone_folder", path=tmp_path / "nowhere")
    try:
        with pytest.raises(zoo.ZooError, match=r"'gone_folder' is registered with the folder "
                           r".*nowhere, which does not exist.*unregister_preset"):
            zoo.load("gone_folder")
        with pytest.raises(zoo.ZooError, match="which does not exist"):
            zoo.info("gone_folder")
    finally:
        zoo.unregister_preset("gone_folder")


@pytest.fixture
def stalling_server():
    """A server that sends the first 100 KB of a 1 MB file, then nothing until the test ends."""
    released = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"\0" * 100_000)
            self.wfile.flush()
            released.wait(30)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stalls.tar.gz"
    released.set()
    server.shutdown()
    server.server_close()


def test_a_stalled_download_fails_naming_the_url_and_timeout(stalling_server, tmp_path,
                                                              monkeypatch):
    # keras.utils.get_file sets no timeout: zoo.load(url) waited forever.
    cache = tmp_path / "cache"
    with pytest.raises(zoo.ZooError, match=rf"Download of {stalling_server} stalled: the server "
                       r"sent nothing for 0.5 s, the timeout \(kgan.zoo.DOWNLOAD_TIMEOUT"):
        zoo.load(stalling_server, sha256="0" * 64, cache_dir=cache, allow_http=True, timeout=0.5)
    monkeypatch.setattr(zoo, "DOWNLOAD_TIMEOUT", 0.25)  # the documented setting
    with pytest.raises(zoo.ZooError, match=r"sent nothing for 0.25 s.*nothing was cached"):
        zoo.resolve(stalling_server, sha256="0" * 64, cache_dir=cache, allow_http=True)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_cache_entry_is_downloaded_again(damage, preset, http_server, tmp_path):
    # Every later load failed, and the message did not say to delete the folder.
    model, _ = preset
    (url, digest), cache = _served(preset, http_server), tmp_path / "cache"
    weights = zoo.resolve(url, sha256=digest, cache_dir=cache, allow_http=True) / zoo.WEIGHTS_FILE
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        weights.unlink()
    with pytest.warns(UserWarning, match=rf"Downloading {url} again: "):
        loaded = zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True)
    np.testing.assert_allclose(loaded.generate(2, seed=0), model.generate(2, seed=0), atol=1e-6)
    assert list(cache.rglob("*.tar.gz")) == []


def _published(folder, http_server, name):
    root, base = http_server
    data = _archive(folder)
    (root / name).write_bytes(data)
    return f"{base}/{name}", _sha256(data)


def test_a_verified_archive_whose_preset_is_refused_is_not_cached(preset, http_server, tmp_path):
    # The archive matched its sha256, so its extraction stayed in the cache
    # although load refused it: "nothing unverified or refused stays cached".
    _, folder = preset
    bad_hash = shutil.copytree(folder, tmp_path / "bad_hash")
    metadata = json.loads((bad_hash / zoo.METADATA_FILE).read_text())
    metadata["weights_sha256"] = "0" * 64
    (bad_hash / zoo.METADATA_FILE).write_text(json.dumps(metadata))
    cache = tmp_path / "cache"
    url, digest = _published(bad_hash, http_server, "bad_hash.tar.gz")
    with pytest.raises(zoo.IntegrityError, match=r"records 0{64}.*matches its sha256, so it was "
                       r"published so: nothing was cached; tell its publisher"):
        zoo.resolve(url, sha256=digest, cache_dir=cache, allow_http=True)
    assert [p for p in cache.rglob("*") if p.is_file()] == []

    # Weights of another architecture: refused by load once built.
    other = zoo.save_preset(DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=8, seed=0),
                            tmp_path / "other", METADATA)
    mismatched = shutil.copytree(folder, tmp_path / "mismatched")
    for name in (zoo.WEIGHTS_FILE, zoo.METADATA_FILE):
        shutil.copy(other / name, mismatched / name)
    url, digest = _published(mismatched, http_server, "mismatched.tar.gz")
    with pytest.raises(zoo.PresetMismatchError, match="do not fit"):
        zoo.load(url, sha256=digest, cache_dir=cache, allow_http=True)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def _cached_entry(folder, cache, sha256="ab" * 32):
    """A copy of the preset `folder` as the download cache entry of `sha256` in `cache`."""
    return shutil.copytree(folder, cache / "kgan" / "presets" / sha256)


@pytest.mark.parametrize("metadata_too", [True, False], ids=["plugin_preset", "config_only"])
def test_a_cache_entry_whose_architecture_is_not_imported_stays_cached(metadata_too, preset,
                                                                        tmp_path):
    # load deleted a verified cache entry on any ZooError: one naming an
    # architecture whose plugin module is not imported yet was downloaded
    # again and again, although importing the module would have loaded it.
    _, folder = preset
    cache = tmp_path / "cache"
    entry = _cached_entry(folder, cache)
    config = json.loads((entry / zoo.CONFIG_FILE).read_text())
    config["class_name"], config["registered_name"] = "MyGAN", "kgan>MyGAN"
    (entry / zoo.CONFIG_FILE).write_text(json.dumps(config))
    if metadata_too:
        metadata = json.loads((entry / zoo.METADATA_FILE).read_text())
        metadata["architecture"] = "mygan"  # a plugin's, registered when its module is imported
        (entry / zoo.METADATA_FILE).write_text(json.dumps(metadata))
    before = {p.name: p.read_bytes() for p in entry.iterdir()}
    with pytest.raises(zoo.PresetMismatchError, match="import the module that registers it"
                       if metadata_too else "one of the two files was replaced"):
        zoo.load("https://example.com/p.tar.gz", sha256="ab" * 32, cache_dir=cache)
    assert {p.name: p.read_bytes() for p in entry.iterdir()} == before


def test_a_damaged_cache_entry_fetched_anew_by_another_process_stays(preset, tmp_path):
    # The entry that failed to load is deleted only if it is still the one at
    # that path: another process may have renamed a fresh download over it.
    _, folder = preset
    entry = _cached_entry(folder, tmp_path / "cache")
    loaded = zoo._identity(entry)
    fresh = shutil.copytree(folder, tmp_path / "fresh")
    shutil.rmtree(entry)
    fresh.rename(entry)
    zoo._discard_cache_entry(entry, loaded)
    assert (entry / zoo.WEIGHTS_FILE).is_file()
    zoo._discard_cache_entry(entry, zoo._identity(entry))
    assert list(entry.parent.iterdir()) == []  # gone, and no staging folder left


def test_a_fetch_sweeps_partial_downloads_of_killed_processes(preset, http_server, tmp_path):
    # A download killed with kill -9 left kgan-preset-<sha>.<pid>-<tid>.tar.gz forever.
    import os
    import subprocess
    import sys
    import time

    from kgan import atomic

    (url, digest), cache = _served(preset, http_server), tmp_path / "cache"
    kgan_cache = cache / "kgan"
    presets = kgan_cache / "presets"
    presets.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    # Staging folders as staging_dir names them: `.NAME-HOST-PID-XXXXXXXX`.
    killed = presets / f".{'3' * 64}-{atomic._host()}-{dead_pid}-abcd1234"  # a killed extraction
    live = presets / f".{'4' * 64}-{atomic._host()}-{os.getpid()}-abcd1234"  # a running one
    recent = presets / f".{'5' * 64}-{atomic._host()}-{dead_pid}-abcd1234"  # another namespace's?
    for folder in (killed, live, recent):
        folder.mkdir()
    stale = [kgan_cache / f"kgan-preset-{'1' * 64}.4242-1.tar.gz", killed]
    stale[0].write_bytes(b"half a download")
    fresh = kgan_cache / f"kgan-preset-{'2' * 64}.4243-1.tar.gz"  # another fetch, running
    fresh.write_bytes(b"a download in progress")
    long_ago = time.time() - zoo.STALE_DOWNLOAD_SECONDS - 60
    for path in (*stale, live):
        os.utime(path, (long_ago, long_ago))
    zoo.resolve(url, sha256=digest, cache_dir=cache, allow_http=True)
    assert not any(path.exists() for path in stale)
    assert fresh.read_bytes() == b"a download in progress"
    assert live.is_dir() and recent.is_dir()


def test_an_extraction_keeps_its_staging_folder_fresh_whatever_the_archive_says(
        preset, http_server, tmp_path, monkeypatch):
    # Extracting a tar whose "." member dates from 2020 set the live staging
    # folder's mtime to 2020: another fetch's sweep deleted it mid-extraction.
    import os
    import time

    from kgan import atomic

    _, folder = preset
    old = shutil.copytree(folder, tmp_path / "old")
    january_2020 = 1577836800
    for path in (*old.iterdir(), old):
        os.utime(path, (january_2020, january_2020))
    url, digest = _published(old, http_server, "old.tar.gz")
    seen = []
    real_replace = zoo.replace_folder

    def replace_folder(source, target):
        staging = next(p for p in (Path(source), *Path(source).parents)
                       if p.parent == Path(target).parent)
        seen.append((staging.name, atomic._last_written(staging)))
        return real_replace(source, target)

    monkeypatch.setattr(zoo, "replace_folder", replace_folder)
    zoo.resolve(url, sha256=digest, cache_dir=tmp_path / "cache", allow_http=True)
    [(name, written)] = seen
    assert name.startswith(f".{digest}-{atomic._host()}-{os.getpid()}-")
    assert written > time.time() - 60


def test_home_relative_paths_are_expanded(preset, http_server, tmp_path, monkeypatch):
    # cache_dir="~/kc" made a folder literally named "~" in the current folder.
    model, folder = preset
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    url, digest = _served(preset, http_server)
    fetched = zoo.resolve(url, sha256=digest, cache_dir="~/kc", allow_http=True)
    assert fetched == home / "kc" / "kgan" / "presets" / digest
    monkeypatch.setenv("KERAS_HOME", "~/keras_home")  # quoted in a shell, so not expanded
    assert zoo.cache_root_dir() == home / "keras_home"
    saved = zoo.save_preset(model, "~/presets/tiny", METADATA)
    assert saved == home / "presets" / "tiny" and zoo.load("~/presets/tiny").latent_dim == 8
    assert zoo.update_metadata("~/presets/tiny", {"notes": "mine"})["notes"] == "mine"
    zoo.register_preset("kgan_test_home", path="~/presets/tiny")
    try:
        assert zoo.resolve("kgan_test_home") == saved
    finally:
        zoo.unregister_preset("kgan_test_home")
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("how", ["under_a_file", "no_permission", "cache_dir"])
def test_an_unwritable_cache_is_named_with_the_setting_that_moves_it(how, preset, http_server,
                                                                      tmp_path, monkeypatch):
    # The error blamed "an output folder", which the user never named.
    import errno
    import os

    url, digest = _served(preset, http_server)
    (tmp_path / "afile").write_text("")
    home = tmp_path / ("ro" if how == "no_permission" else "afile") / "keras"
    if how == "no_permission":  # faked: root may write anywhere
        real_mkdir = os.mkdir

        def refuse(path, *args, **kwargs):
            if str(home) in str(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", refuse)
    monkeypatch.setenv("KERAS_HOME", str(home))
    setting = f"cache_dir \\({home}\\)" if how == "cache_dir" else f"KERAS_HOME \\({home}\\)"
    reason = ("no permission to write there" if how == "no_permission"
              else "a file is in the way of a folder")
    with pytest.raises(zoo.ZooError, match=rf"Cannot cache the downloaded preset in {home}: "
                       rf"{reason}. Remote presets are cached in {setting}: set KERAS_HOME \(or "
                       r"pass cache_dir=...\) to a folder you can write to"):
        zoo.resolve(url, sha256=digest, allow_http=True,
                    cache_dir=home if how == "cache_dir" else None)


class _FailingResponse:
    """A response that sends 100 bytes, then fails the next read with `error`."""

    length = 1000
    headers = {"Content-Type": "application/gzip"}

    def __init__(self, error):
        self.error, self.reads = error, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, size):
        self.reads += 1
        if self.reads == 1:
            return b"x" * 100
        raise self.error


@pytest.mark.parametrize("error", [
    ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] bad record mac"),
    OSError(errno.ENETUNREACH, "Network is unreachable"),
], ids=["ssl", "enetunreach"])
def test_a_network_oserror_mid_download_is_a_download_error(error, tmp_path, monkeypatch):
    # ssl.SSLError has errno 1 (EPERM): it was reported as "Cannot cache ... no
    # permission to write there ... set KERAS_HOME", about a cache that was fine.
    url = "https://example.com/p.tar.gz"
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FailingResponse(error))
    with pytest.raises(zoo.ZooError, match=rf"Could not download preset from {url}: "
                       rf"{type(error).__name__}: .*{re.escape(error.strerror)}.*Check the network") as info:
        zoo.resolve(url, sha256="a" * 64, cache_dir=tmp_path / "cache")
    assert "Cannot cache" not in str(info.value)
    assert list((tmp_path / "cache" / "kgan").glob("*.tar.gz")) == []


def test_a_folder_named_like_a_registered_preset_is_named_in_a_warning(tmp_path, monkeypatch):
    # `mkdir dcgan_mnist; kgan info dcgan_mnist` showed the shipped preset, silently.
    import warnings

    shipped = zoo.resolve("dcgan_mnist")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dcgan_mnist").mkdir()
    with pytest.warns(UserWarning, match=r"'dcgan_mnist' names the registered preset \(.*zoo/"
                      r"dcgan_mnist\), which is loaded; the folder .*dcgan_mnist in the current "
                      r"folder is not. To load that folder, pass './dcgan_mnist'"):
        assert zoo.resolve("dcgan_mnist") == shipped
    with pytest.raises(zoo.ZooError, match="is not a preset folder"):  # the folder, as told
        zoo.info("./dcgan_mnist")
    monkeypatch.chdir(shipped.parent)  # from inside zoo/: the folder is the preset itself
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.resolve("dcgan_mnist") == shipped


def test_a_sha256_of_64_characters_that_are_not_hex_says_so():
    # It said "Keras would treat a shorter hash as MD5" of a hash that was not shorter.
    with pytest.raises(zoo.ZooError, match=r"64 hex characters\); 'z{64}' has characters that are "
                       r"not hex digits"):
        zoo.resolve("https://example.invalid/p.tar.gz", sha256="z" * 64)
    with pytest.raises(zoo.ZooError, match=r"got 'a{32}', 32 characters"):
        zoo.resolve("https://example.invalid/p.tar.gz", sha256="a" * 32)


@pytest.fixture
def odd_server():
    """Serves `/html` (an HTML page) and `/short` (a body shorter than its Content-Length)."""

    class Odd(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = b"<html>not found, but 200</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body) + (1000 if self.path == "/short" else 0)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_errors_say_what_was_received(odd_server, tmp_path):
    # A mismatch did not say what came instead; a dropped connection said
    # Keras' "None -- retrieval incomplete".
    cache = tmp_path / "cache"
    actual = _sha256(b"<html>not found, but 200</html>")
    with pytest.raises(zoo.IntegrityError, match=rf"it has sha256 {actual} \(31 bytes, served as "
                       r"text/html; charset=utf-8\)"):
        zoo.resolve(f"{odd_server}/html", sha256="0" * 64, cache_dir=cache, allow_http=True)
    with pytest.raises(zoo.ZooError, match=r"/short is incomplete: the connection ended after 31 "
                       r"of 1,031 bytes. Try again"):
        zoo.resolve(f"{odd_server}/short", sha256="0" * 64, cache_dir=cache, allow_http=True)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_an_archive_without_a_preset_is_named_by_its_url(http_server, tmp_path):
    # The error named the temporary kgan-preset-<sha>.<pid>-<tid>.tar.gz.
    root, base = http_server
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("no preset here")
    data = _archive(root / "notes", arcname="notes")
    (root / "notes.tar.gz").write_bytes(data)
    with pytest.raises(zoo.ZooError, match=rf"The archive from {base}/notes.tar.gz holds no preset "
                       "folder"):
        zoo.resolve(f"{base}/notes.tar.gz", sha256=_sha256(data), cache_dir=tmp_path / "c",
                    allow_http=True)
