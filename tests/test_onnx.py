"""ONNX checkpoints: export, the contract, loading through onnxruntime, sampling, refusals.

Tolerance of the torch/onnxruntime comparison: both run the same float32 graph, but with different
kernels (oneDNN vs onnxruntime's MLAS) that sum in different orders, so one denoiser call differs
by about 1e-7 relative (float32 rounding). The sampler feeds each call's output into the next
(2 x steps - 1 calls), and the PP decoder is smooth, so the final members agree to ~1e-5; the
test allows 1e-4 absolute + 1e-4 relative (PP is ~N(0, 1), tp in mm/h), 100 times below the
difference between two seeds' members (checked too, so the comparison can fail).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
import xarray as xr

from ppviz.checkpoints import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from ppviz.cli import main
from ppviz.data.regions import Region
from ppviz.data.source import load_dataset
from ppviz.diffusion import karras_sigmas, member_generators, member_noise, sample_heun, upsample_coarse
from ppviz.diffusion.onnx_export import export_denoiser, make_contract, write_contract_files
from ppviz.diffusion.tiny import save_tiny_diffusion
from ppviz.models.pp import PPAutoencoder, PPConfig
from ppviz.pipeline import Models, downscale_time

REGION = "alps"  # not a multiple of the U-Net's size: the ONNX adapter pads like EDMPrecond
ATOL = RTOL = 1e-4
STATICS = ["lsm", "orography_km", "sin_lat", "cos_lat", "sin_lon", "cos_lon"]


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    """A registry with a PP model, a tiny (perturbed, so not trivial) diffusion model and its ONNX
    export made by ``ppviz export onnx``."""
    d = tmp_path_factory.mktemp("onnx-ckpts")
    torch.manual_seed(0)
    save_checkpoint(PPAutoencoder(PPConfig(hidden=8, depth=1)), d / "test-pp", kind="pp", architecture="pp-mlp")
    save_tiny_diffusion(d, "tiny-torch", perturb=0.05, extra={"pp_checkpoint": "test-pp"})
    mp = pytest.MonkeyPatch()
    mp.setenv("PPVIZ_CHECKPOINTS", str(d))
    assert main(["export", "onnx", "tiny-torch", "--out", str(d / "tiny-onnx")]) == 0
    yield d
    mp.undo()


def test_export_writes_model_contract_and_card(reg):
    out = reg / "tiny-onnx"
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.onnx"]
    doc = json.loads((out / "config.json").read_text())
    c = doc["config"]
    assert doc["architecture"] == "onnx-denoiser" and doc["kind"] == "diffusion" and doc["weights"]["format"] == "onnx"
    assert [i["name"] for i in c["inputs"]] == ["x", "sigma", "cond"] and c["outputs"][0]["name"] == "denoised"
    assert c["inputs"][2]["shape"] == ["batch", 7, "height", "width"] and c["graph"] == "edm-denoiser"
    assert c["cond_channels"][0] == "coarse_up" and c["static_channels"]["provided"] == "input"
    assert c["sigma_data"] == 0.5 and c["factor"] == 4 and c["size_multiple"] == 2 and c["residual"] is True
    assert c["noise_schedule"]["sigma_max"] == 80.0 and c["noise_schedule"]["sampler"] == "heun"
    assert doc["extra"]["pp_checkpoint"] == "test-pp" and doc["extra"]["exported_from"]["checkpoint"] == "tiny-torch"
    assert doc["extra"]["export_check"]["max_abs_diff_vs_torch"] < 1e-5
    card = (out / "MODEL_CARD.md").read_text()
    assert "| cond | ['batch', 7, 'height', 'width'] | float32 |" in card and "EDM eq. 7" in card
    info = {i.name: i for i in list_checkpoints("diffusion")}["tiny-onnx"]
    assert info.ok and info.architecture == "onnx-denoiser" and info.summary.startswith("ONNX export of tiny-torch")


def test_onnx_members_equal_torch_members(reg):
    """The ONNX export of a checkpoint gives the torch model's members for the same seeds."""
    ds = load_dataset(None)
    region = Region.parse(REGION)
    t = ds.time.values[5]
    a = downscale_time(Models.load("tiny-torch", "test-pp", "cpu"), ds, t, region, members=2, steps=4, seed=3)
    onnx_models = Models.load("tiny-onnx", "test-pp", "cpu")
    assert onnx_models.diffusion.precond.providers == ["CPUExecutionProvider"]
    b = downscale_time(onnx_models, ds, t, region, members=2, steps=4, seed=3)
    assert a.seeds == b.seeds and b.pp_members.shape == a.pp_members.shape == (2, *region.fine_grid.shape)
    np.testing.assert_allclose(b.pp_members, a.pp_members, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b.tp_members, a.tp_members, rtol=RTOL, atol=ATOL)
    # the tolerance is far below what a different seed changes, so the comparison can fail
    assert np.abs(a.pp_members[0] - a.pp_members[1]).max() > 100 * ATOL


def test_cli_downscale_runs_an_onnx_checkpoint(reg, tmp_path, run_cli):
    out = tmp_path / "onnx.nc"
    code, stdout, err = run_cli("downscale", "--start", "2021-01-01T05", "--region", REGION, "--members", "2",
                             "--steps", "3", "--checkpoint", "tiny-onnx", "--workers", "0", "--out", str(out))
    assert code == 0, err
    with xr.open_dataset(out) as res:
        assert res["tp"].shape[:2] == (2, 1) and np.isfinite(res["tp"].values).all()
        assert res.attrs["diffusion_checkpoint"] == "tiny-onnx" and res.attrs["pp_checkpoint"] == "test-pp"


def test_a_foreign_network_samples_through_onnx(tmp_path):
    """A network that is not ppviz's, defined only here, exported, its class deleted, then sampled."""

    class Foreign(torch.nn.Module):  # EDM preconditioning around two convolutions; 2 of the 6 static fields
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(5, 12, 3, padding=1)
            self.b = torch.nn.Conv2d(12, 1, 5, padding=2)

        def forward(self, x, sigma, cond):
            s = sigma.reshape(-1, 1, 1, 1)
            c_skip, c_out, c_in = 0.09 / (s**2 + 0.09), s * 0.3 / (s**2 + 0.09).sqrt(), 1 / (s**2 + 0.09).sqrt()
            h = torch.cat([c_in * x, cond, (s.log() / 4).expand_as(x)], dim=1)
            return c_skip * x + c_out * self.b(torch.tanh(self.a(h)))

    torch.manual_seed(1)
    net = Foreign()
    contract = make_contract(sigma_data=0.3, static_names=("orography_km", "lsm"), factor=4, size_multiple=1,
                             residual=False, noise_schedule={"steps": 5, "sigma_max": 20.0})
    path = export_denoiser(net, tmp_path / "foreign", contract=contract, extra={"summary": "not ppviz's"})
    # what ppviz's samplers make of the torch module: the reference
    rng = np.random.default_rng(0)
    coarse = rng.standard_normal((3, 4)).astype("f4")
    static = rng.standard_normal((6, 12, 16)).astype("f4")  # the six fields ppviz computes, in its order
    seeds = [11, 12]
    cond = torch.cat([upsample_coarse(torch.from_numpy(coarse))[None, None],
                      torch.from_numpy(static[[1, 0]])[None]], dim=1).expand(2, -1, -1, -1)
    sigmas = karras_sigmas(5, 0.002, 20.0, 7.0)
    with torch.no_grad():
        want = sample_heun(net, member_noise((1, 12, 16), seeds) * 20.0, sigmas, cond=cond,
                           generator=member_generators(seeds))[:, 0].numpy()
    del Foreign, net
    model = load_checkpoint(path).model
    got = model.sample(coarse, static, seeds).numpy()  # steps, sigma_max, sampler from the contract
    assert got.shape == (2, 12, 16) and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(model.sample(coarse, static, seeds[1:]).numpy()[0], got[1], rtol=RTOL, atol=ATOL)
    assert np.abs(got[0] - got[1]).max() > 100 * ATOL


# -- refusals (docs/robustness.md) ----------------------------------------------------------------


def _handmade(directory, *, domain="", op="Identity", inputs=("x", "sigma", "cond"), external=None, contract=None,
              record_external=True):
    """A hand-built ONNX checkpoint: ``denoised = op(x)``; optionally an external-data initializer."""
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True)
    dims = {"x": ["batch", 1, "h", "w"], "sigma": ["batch"], "cond": ["batch", 7, "h", "w"]}
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims.get(n, ["batch"])) for n in inputs]
    out = helper.make_tensor_value_info("denoised", TensorProto.FLOAT, ["batch", 1, "h", "w"])
    inits = []
    if external is not None:
        t = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
        t.data_location = TensorProto.EXTERNAL
        del t.float_data[:]
        t.external_data.add(key="location", value=external)
        inits.append(t)
    node = helper.make_node(op, [inputs[0]], ["denoised"], domain=domain)
    opsets = [helper.make_opsetid("", 20)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "g", ins, [out], initializer=inits), opset_imports=opsets)
    onnx.save(model, str(directory / "model.onnx"))
    contract = contract or make_contract(sigma_data=1.0, static_names=STATICS, factor=4, size_multiple=1)
    ext = {external: "0" * 64} if external and record_external else None
    write_contract_files(directory, contract, extra={"summary": "handmade"}, external=ext)
    return directory


def _refused(path, *fragments):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    for f in fragments:
        assert f in str(e.value), str(e.value)


def test_a_handmade_identity_graph_loads_and_samples(tmp_path):
    model = load_checkpoint(_handmade(tmp_path / "ident")).model
    out = model.sample(np.zeros((4, 4), "f4"), np.zeros((6, 16, 16), "f4"), [1], num_steps=3)
    assert out.shape == (1, 16, 16) and torch.isfinite(out).all()


def test_refuses_tampered_and_invalid_onnx_files(tmp_path):
    p = _handmade(tmp_path / "tampered")
    (p / "model.onnx").write_bytes((p / "model.onnx").read_bytes() + b"\0")
    _refused(p, "model.onnx was modified after it was written")
    q = _handmade(tmp_path / "garbage")
    (q / "model.onnx").write_bytes(b"not a protobuf at all \xff\xfe")
    doc = json.loads((q / "config.json").read_text())
    import hashlib

    doc["weights"]["sha256"] = hashlib.sha256((q / "model.onnx").read_bytes()).hexdigest()
    (q / "config.json").write_text(json.dumps(doc))
    _refused(q, "model.onnx is not a valid ONNX model")
    r = _handmade(tmp_path / "nomodel")
    (r / "model.onnx").unlink()
    _refused(r, "missing model.safetensors (or model.onnx")


def test_refuses_links_and_external_data_leading_outside(tmp_path):
    outside = _handmade(tmp_path / "elsewhere")
    p = tmp_path / "reg" / "linked"
    p.mkdir(parents=True)
    (p / "config.json").write_text((outside / "config.json").read_text())
    os.symlink(outside / "model.onnx", p / "model.onnx")
    _refused(p, "model.onnx is a link leading outside the checkpoint directory")
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4)
    _refused(_handmade(tmp_path / "ext-out", external="../secret.bin"), "external file '../secret.bin'",
             "not a plain file name inside the checkpoint directory")
    q = _handmade(tmp_path / "ext-unrecorded", external="weights.bin", record_external=False)
    (q / "weights.bin").write_bytes(b"\0" * 4)
    _refused(q, "external data file 'weights.bin' is not recorded")
    _refused(_handmade(tmp_path / "ext-missing", external="gone.bin"), "needs external data file 'gone.bin'")


def test_refuses_custom_operator_domains(tmp_path):
    _refused(_handmade(tmp_path / "custom", domain="com.example.pyop", op="PyOp"),
             "uses custom operator domains ['com.example.pyop']", "no custom op libraries")


def test_refuses_a_graph_that_does_not_match_its_contract(tmp_path):
    _refused(_handmade(tmp_path / "renamed", inputs=("noisy", "sigma", "cond")), "model.onnx's inputs",
             "do not match the contract's")
    base = make_contract(sigma_data=1.0, static_names=("lsm",), factor=4, size_multiple=1)
    _refused(_handmade(tmp_path / "channels", contract=base), "takes 7 cond channels but the contract names 2")
    for key, value, text in (("graph", "raw-network", "ppviz runs only 'edm-denoiser'"),
                             ("static_channels", {"names": STATICS, "provided": "baked"}, "only 'input' is supported"),
                             ("sigma_data", -1, "has sigma_data -1; need a number > 0"),
                             ("inputs", base["inputs"][::-1], "must list inputs named ['x', 'sigma', 'cond']")):
        p = _handmade(tmp_path / f"bad-{key}")
        doc = json.loads((p / "config.json").read_text())
        doc["config"][key] = value
        (p / "config.json").write_text(json.dumps(doc))
        _refused(p, text)
    p = _handmade(tmp_path / "static-unknown",
                  contract=make_contract(sigma_data=1.0, static_names=("soil_moisture",) * 6, factor=4, size_multiple=1))
    _refused(p, "static channels ['soil_moisture'", "ppviz provides ['lsm'")


def test_cli_export_refuses_what_it_cannot_export(reg, tmp_path, run_cli):
    code, _, err = run_cli("export", "onnx", "test-pp", "--out", str(tmp_path / "x"))
    assert code == 2 and "is a 'pp' checkpoint, not 'diffusion" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("export", "onnx", "tiny-onnx", "--out", str(tmp_path / "y"))
    assert code == 2 and "only 'edm-unet' checkpoints" in err
    code, _, err = run_cli("export", "onnx", "tiny-torch", "--out", str(reg / "tiny-onnx"))
    assert code == 2 and "exists; pass --overwrite" in err


def test_a_model_card_linked_from_outside_is_not_read(reg, tmp_path):
    from ppviz.views.cache import read_model_card

    assert "## Inputs and outputs" in read_model_card("tiny-onnx")
    (tmp_path / "secret.md").write_text("secret text")
    linked = reg / "linked-card"
    linked.mkdir()
    for f in ("config.json", "model.onnx"):
        (linked / f).write_bytes((reg / "tiny-onnx" / f).read_bytes())
    os.symlink(tmp_path / "secret.md", linked / "MODEL_CARD.md")
    text = read_model_card("linked-card")
    assert "secret" not in text.replace("linked-card", "") and "leading outside the checkpoint directory" in text
    assert load_checkpoint("linked-card").model is not None  # the model itself loads: nothing of it is outside
    shutil.rmtree(linked)
