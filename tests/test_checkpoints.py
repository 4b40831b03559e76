"""Checkpoints: safetensors + JSON round trip, atomic saves, refusals, and the name registry."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import ppviz.checkpoints as ck
from ppviz.checkpoints import lookup, registry, store
from ppviz.checkpoints import (
    ARCHITECTURES,
    CheckpointError,
    default_checkpoint,
    file_sha256,
    list_checkpoints,
    load_checkpoint,
    register_architecture,
    resolve_checkpoint,
    save_checkpoint,
)
from ppviz.models.pp import PPAutoencoder, PPConfig


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test sees the repo's pretrained/ or the user's $PPVIZ_CHECKPOINTS."""
    pre = tmp_path / "pretrained"
    pre.mkdir()
    monkeypatch.setattr(lookup, "PRETRAINED_DIR", pre)
    monkeypatch.delenv("PPVIZ_CHECKPOINTS", raising=False)
    return pre


def _pp(hidden=16, seed=0):
    torch.manual_seed(seed)
    return PPAutoencoder(PPConfig(hidden=hidden, depth=2))


def _save(path, model=None, **kw):
    model = model if model is not None else _pp()
    kw.setdefault("kind", "pp")
    kw.setdefault("architecture", "pp-mlp")
    kw.setdefault("config", model.config)
    return save_checkpoint(model, path, **kw)


def _edit_config(path: Path, fn) -> None:
    doc = json.loads((path / "config.json").read_text())
    fn(doc)
    (path / "config.json").write_text(json.dumps(doc))


def _rewrite_weights(path: Path, tensors: dict) -> None:
    """Replace the weights and re-record hash and manifest, as a careful forger would."""
    from safetensors.torch import save_file

    save_file(tensors, str(path / "model.safetensors"))
    header = ck.read_safetensors_header(path / "model.safetensors")

    def fix(doc):
        doc["weights"]["sha256"] = file_sha256(path / "model.safetensors")
        doc["weights"]["tensors"] = ck.manifest_from_header(header)

    _edit_config(path, fix)


def _refused(path_or_name, *fragments, **kw) -> str:
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path_or_name, **kw)
    msg = str(e.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


# -- round trip and contents ------------------------------------------------------------------


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _pp()
    path = _save(tmp_path / "pp-small", model, extra={"seed": 3, "summary": "a test PP model"})
    loaded = load_checkpoint(path)
    assert isinstance(loaded.model, PPAutoencoder) and not loaded.model.training
    assert loaded.model.config == model.config
    assert (loaded.name, loaded.kind, loaded.path) == ("pp-small", "pp", path)
    assert loaded.sha256 == file_sha256(path / "model.safetensors")
    tp = torch.rand(1000) * 5
    vimd = torch.randn(1000)
    with torch.no_grad():
        pp0, tp0 = model(tp, vimd)
        pp1, tp1 = loaded.model(tp, vimd)
    assert torch.equal(pp0, pp1) and torch.equal(tp0, tp1)


def test_config_json_contents(tmp_path):
    model = _pp(hidden=8)
    extra = {"seed": 7, "command": "ppviz train pp --seed 7", "metrics": {"rmse": 0.5, "bad": float("nan")}}
    path = _save(tmp_path / "pp-a", model, extra=extra, model_card="# hello\n")
    assert sorted(p.name for p in path.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    doc = json.loads((path / "config.json").read_text())
    assert doc["format_version"] == ck.FORMAT_VERSION and doc["format"] == "ppviz-checkpoint"
    assert (doc["kind"], doc["architecture"]) == ("pp", "pp-mlp")
    assert doc["config"] == model.config.to_dict()
    assert doc["weights"]["sha256"] == hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert doc["weights"]["tensors"]["encoder_net.0.weight"] == [[8, 3], "F32"]
    assert set(doc["weights"]["tensors"]) == set(model.state_dict())
    assert doc["weights"]["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert doc["ppviz_version"] and doc["created"].endswith("+00:00")
    assert doc["extra"] == {**extra, "metrics": {"rmse": 0.5, "bad": None}}  # strict JSON: NaN -> null
    assert (path / "MODEL_CARD.md").read_text() == "# hello\n"
    # a generated card when none is given
    card = (_save(tmp_path / "pp-b", model) / "MODEL_CARD.md").read_text()
    assert "# pp-b" in card and "pp-mlp" in card and '"hidden": 8' in card


def test_save_refuses_config_that_does_not_build_the_model(tmp_path):
    with pytest.raises(ValueError, match="shape mismatches"):
        _save(tmp_path / "x", _pp(hidden=16), config=PPConfig(hidden=32, depth=2))
    with pytest.raises(ValueError, match="unknown architecture"):
        _save(tmp_path / "x", architecture="nope")
    with pytest.raises(ValueError, match="must match"):
        _save(tmp_path / ".hidden")
    assert not (tmp_path / "x").exists()


# -- atomic saves -----------------------------------------------------------------------------


def _failing_save_file(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"partial")
    raise OSError("disk full (simulated)")


def test_interrupted_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "save_file", _failing_save_file)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path / "pp-new")
    assert list(tmp_path.iterdir()) == [tmp_path / "pretrained"]  # no target, no temporaries


def test_interrupted_overwrite_keeps_the_existing_checkpoint(tmp_path, monkeypatch):
    path = _save(tmp_path / "pp-old", _pp(seed=1))
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(FileExistsError):
        _save(path, _pp(seed=2))
    monkeypatch.setattr(store, "save_file", _failing_save_file)
    with pytest.raises(OSError, match="simulated"):
        _save(path, _pp(seed=2), overwrite=True)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pp-old", "pretrained"]
    load_checkpoint(path)


def test_overwrite_replaces(tmp_path):
    path = _save(tmp_path / "pp-x", _pp(seed=1))
    new = _pp(seed=2)
    _save(path, new, overwrite=True)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded.model.encoder_net[0].weight, new.encoder_net[0].weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pp-x", "pretrained"]


# -- refusals ---------------------------------------------------------------------------------


def test_refuses_pickle_renamed_to_safetensors(tmp_path):
    path = _save(tmp_path / "pp-p")
    (path / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    _refused(path, "'pp-p'", "looks like a pickle", "ppviz only loads safetensors")


def test_refuses_torch_save_zip_renamed_to_safetensors(tmp_path):
    model = _pp()
    path = _save(tmp_path / "pp-z", model)
    torch.save(model.state_dict(), path / "model.safetensors")
    _refused(path, "'pp-z'", "zip (torch.save)", "ppviz only loads safetensors")


def test_refuses_truncated_file(tmp_path):
    path = _save(tmp_path / "pp-t")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) - 100])
    _refused(path, "'pp-t'", "truncated", "tensor data")
    (path / "model.safetensors").write_bytes(data[:40])  # inside the header
    _refused(path, "truncated", "header")
    (path / "model.safetensors").write_bytes(data[:5])
    _refused(path, "truncated or empty")


def test_refuses_modified_weights(tmp_path):
    path = _save(tmp_path / "pp-m")
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0x01  # one bit of one float
    (path / "model.safetensors").write_bytes(bytes(data))
    _refused(path, "'pp-m'", "modified after it was written", "sha256")


def test_refuses_wrong_shapes_listing_them(tmp_path):
    path = _save(tmp_path / "pp-s", _pp(hidden=32))
    _edit_config(path, lambda d: d["config"].update(hidden=64))  # the weights and their hash are untouched
    msg = _refused(path, "'pp-s'", "shape mismatches", "encoder_net.0.weight: checkpoint [32, 3] vs model [64, 3]")
    assert "missing keys" not in msg and "modified" not in msg


def test_refuses_missing_and_unexpected_keys(tmp_path):
    model = _pp()
    path = _save(tmp_path / "pp-k", model)
    tensors = {k: v.clone() for k, v in model.state_dict().items() if k != "decoder_net.0.bias"}
    tensors["stray.weight"] = torch.zeros(3)
    _rewrite_weights(path, tensors)
    _refused(path, "missing keys", "decoder_net.0.bias", "unexpected keys", "stray.weight")


def test_refuses_manifest_inconsistent_with_file(tmp_path):
    path = _save(tmp_path / "pp-man")
    _edit_config(path, lambda d: d["weights"]["tensors"].update({"encoder_net.0.bias": [[99], "F32"]}))
    _refused(path, "tensor manifest", "encoder_net.0.bias")


def test_refuses_bad_config_json(tmp_path):
    path = _save(tmp_path / "pp-j")
    (path / "config.json").write_text("{not json")
    _refused(path, "'pp-j'", "config.json is not valid JSON")
    path = _save(tmp_path / "pp-r")
    _edit_config(path, lambda d: d.pop("architecture"))
    _refused(path, "lacks required keys", "architecture")
    path = _save(tmp_path / "pp-v")
    _edit_config(path, lambda d: d.update(format_version=99))
    _refused(path, "unknown format version 99")
    path = _save(tmp_path / "pp-c")
    _edit_config(path, lambda d: d["config"].update(width=3))
    _refused(path, "unknown keys ['width']", "hidden")


def test_refuses_unknown_architecture(tmp_path):
    path = _save(tmp_path / "pp-u")
    _edit_config(path, lambda d: d.update(architecture="transformer-xl"))
    _refused(path, "unknown architecture 'transformer-xl'", "pp-mlp")


def test_refuses_missing_files(tmp_path):
    _refused(tmp_path / "nowhere", "no such checkpoint directory")
    path = _save(tmp_path / "pp-f")
    (path / "model.safetensors").unlink()
    _refused(path, "'pp-f'", "missing model.safetensors")
    (path / "config.json").unlink()
    _refused(path, "missing config.json and model.safetensors")


# -- architecture registry --------------------------------------------------------------------


def test_architecture_registry(monkeypatch):
    with pytest.raises(ValueError, match="known architectures.*pp-mlp"):
        ck.get_architecture("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("pp-mlp", PPConfig, registry._build_pp)
    monkeypatch.setitem(ARCHITECTURES, "lazy", ck.Architecture("lazy", None, "ppviz.no_such_module:build"))
    with pytest.raises(ValueError, match="could not be imported"):
        ARCHITECTURES["lazy"].build({})
    # the lazy diffusion entry never imports its module until it is used
    assert isinstance(ARCHITECTURES["edm-unet"].build_fn, str)


def test_lazy_entry_is_replaceable_and_unavailable_ones_are_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "pp-later", ck.Architecture("pp-later", None, "ppviz.no_such_module:build"))
    path = _save(tmp_path / "pp-n", architecture="pp-mlp")
    _edit_config(path, lambda d: d.update(architecture="pp-later"))
    _refused(path, "'pp-n'", "architecture 'pp-later' is not available", "ppviz.no_such_module")
    register_architecture("pp-later", PPConfig, registry._build_pp)  # a module registering itself: allowed
    assert isinstance(load_checkpoint(path).model, PPAutoencoder)
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("pp-later", PPConfig, registry._build_pp)


def test_import_does_not_import_diffusion_code():
    import subprocess
    import sys

    code = "import sys, ppviz.checkpoints; print(any(m.startswith('ppviz.diffusion') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_registered_architecture_by_import_path(tmp_path, monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "pp-lazy", ck.Architecture("pp-lazy", "ppviz.models.pp:PPConfig", "ppviz.checkpoints.registry:_build_pp"))
    path = _save(tmp_path / "pp-l", architecture="pp-lazy")
    assert isinstance(load_checkpoint(path).model, PPAutoencoder)


# -- names and the registry of checkpoints ----------------------------------------------------


def test_listing_and_names(tmp_path, monkeypatch, isolated_dirs):
    user = tmp_path / "user"
    other = tmp_path / "other"
    monkeypatch.setenv("PPVIZ_CHECKPOINTS", os.pathsep.join([str(user), "", str(other)]))
    assert ck.checkpoint_dirs() == [isolated_dirs, user, other]
    _save(user / "pp-mine", extra={"summary": "mine\nsecond line"})
    _save(other / "pp-theirs")
    broken = _save(user / "pp-broken")
    (broken / "config.json").write_text("[")
    (user / "not a checkpoint").mkdir()
    (user / "notes").mkdir()

    infos = {i.name: i for i in list_checkpoints()}
    assert sorted(infos) == ["pp-broken", "pp-mine", "pp-theirs"]
    assert infos["pp-mine"].kind == "pp" and infos["pp-mine"].summary == "mine"
    assert infos["pp-mine"].sha256 == file_sha256(user / "pp-mine" / "model.safetensors")[:12]
    assert infos["pp-mine"].architecture == "pp-mlp" and infos["pp-mine"].created
    assert infos["pp-broken"].error and "not valid JSON" in infos["pp-broken"].error
    assert list_checkpoints(kind="diffusion") == [infos["pp-broken"]]  # broken ones stay visible

    assert resolve_checkpoint("pp-theirs") == other / "pp-theirs"
    assert load_checkpoint("pp-mine", kind="pp").name == "pp-mine"
    with pytest.raises(CheckpointError, match="is a 'pp' checkpoint, not 'diffusion'"):
        load_checkpoint("pp-mine", kind="diffusion")
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint("pp-nope", kind="pp")
    assert "pp-mine" in str(e.value) and "pp-theirs" in str(e.value) and "pp-broken" not in str(e.value)
    with pytest.raises(CheckpointError, match="no diffusion checkpoints.*ppviz train diffusion"):
        resolve_checkpoint("dm-nope", kind="diffusion")


def test_collisions_first_directory_wins(tmp_path, monkeypatch, isolated_dirs):
    user = tmp_path / "user"
    monkeypatch.setenv("PPVIZ_CHECKPOINTS", str(user))
    shipped = _save(isolated_dirs / "pp-same", _pp(seed=1))
    mine = _save(user / "pp-same", _pp(seed=2))
    infos = list_checkpoints()
    assert [(i.path, i.shadowed_by) for i in infos] == [(shipped, None), (mine, shipped)]
    assert resolve_checkpoint("pp-same") == shipped
    assert load_checkpoint(mine).path == mine  # the shadowed one is still loadable by path


def test_default_checkpoint(tmp_path, monkeypatch, isolated_dirs):
    with pytest.raises(CheckpointError, match="no pp checkpoint.*ppviz train pp"):
        default_checkpoint("pp")
    with pytest.raises(CheckpointError, match="ppviz train diffusion"):
        default_checkpoint("diffusion")
    _save(isolated_dirs / "pp-one")
    assert default_checkpoint("pp") == "pp-one"  # the only one
    _save(isolated_dirs / "pp-two")
    with pytest.raises(CheckpointError, match="none marked default"):
        default_checkpoint("pp")
    _save(isolated_dirs / "pp-three", extra={"default": True})
    assert default_checkpoint("pp") == "pp-three"


@pytest.mark.parametrize("bad", ["../../etc", "a/b", "..", ".", "", "-rf", "x..y", "/etc/passwd"])
def test_traversal_and_bad_names_refused(bad, tmp_path, monkeypatch):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)  # so that ../../etc names no existing directory
    with pytest.raises(CheckpointError, match="not a valid checkpoint name"):
        resolve_checkpoint(bad, allow_paths=False)
    if bad in ("../../etc", "a/b", "-rf", "x..y"):
        with pytest.raises(CheckpointError, match="not a valid checkpoint name"):
            load_checkpoint(bad)


def test_paths_are_accepted_only_when_allowed(tmp_path, monkeypatch, isolated_dirs):
    path = _save(tmp_path / "elsewhere" / "pp-e")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resolve_checkpoint("./pp-e") == Path("./pp-e")
    assert resolve_checkpoint(str(path)) == path
    assert resolve_checkpoint("pp-e") == Path("pp-e")  # not registered, but a directory here
    with pytest.raises(CheckpointError, match="paths are not accepted"):
        resolve_checkpoint(str(path), allow_paths=False)
    with pytest.raises(CheckpointError, match="no checkpoint named 'pp-e'"):
        resolve_checkpoint("pp-e", allow_paths=False)


def test_symlink_out_of_registry_refused(tmp_path, isolated_dirs):
    outside = _save(tmp_path / "outside" / "pp-out")
    (isolated_dirs / "pp-link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(CheckpointError, match="leads outside"):
        resolve_checkpoint("pp-link")
    (info,) = list_checkpoints()
    assert info.name == "pp-link" and "leads outside" in info.error
