"""EDM network pickles: read without running them, rebuilt as an ADM that agrees with the EDM network; refusals."""

from __future__ import annotations

import pickle

import pytest
import torch
from adm_helpers import randomize
from edm_layout import MODULE_SOURCE, EDMPrecondLike, Malicious, edm_pickle_bytes

from pagoda_inverse.core.adm_teacher import VPEpsDenoiser, load_adm_teacher
from pagoda_inverse.core.checkpoint import load_config
from pagoda_inverse.core.precond import EDMPrecond
from pagoda_inverse.interop.edm_pickle import PersistentRecord, convert_edm, read_edm_pickle
from pagoda_inverse.utils.errors import CheckpointError

ADMUNet = pytest.importorskip("deepinv.models.guided_diffusion").ADMUNet

#: A small DhariwalUNet: 128 channels (EDM's GroupNorm rule and 32 groups agree), 4x4 attention, 4 classes.
UNET = dict(img_resolution=8, in_channels=3, out_channels=3, label_dim=4, model_channels=128, channel_mult=[1, 1],
            num_blocks=1, attn_resolutions=[4], dropout=0.0)  # fmt: skip
#: Three levels, two blocks each, attention only at the middle one: up-samplers after and without attention.
UNET3 = {
    **UNET,
    "img_resolution": 16,
    "channel_mult": [1, 1, 1],
    "num_blocks": 2,
    "attn_resolutions": [8],
    "label_dim": 0,
}
PRECOND = dict(img_resolution=8, img_channels=3, label_dim=4, use_fp16=False, sigma_min=0.0, sigma_max=float("inf"),
               sigma_data=0.5, model_type="DhariwalUNet")  # fmt: skip


def _edm_net(unet=UNET, **changes):
    torch.manual_seed(0)
    unet = randomize(ADMUNet(pretrained=None, **{**unet, **changes}), constant_only=True).eval()
    unet.pixel_std = 0.5  # deepinv's precond then is EDM's EDMPrecond on [-1, 1] images
    return unet


@pytest.fixture(scope="module", params=[UNET, UNET3], ids=["2-level", "3-level"])
def edm_pkl(tmp_path_factory, request):
    """``(DhariwalUNet stand-in, path of its EDM-layout pickle)``."""
    unet = _edm_net(request.param)
    precond = {**PRECOND, "img_resolution": request.param["img_resolution"], "label_dim": request.param["label_dim"]}
    path = tmp_path_factory.mktemp("edm") / "network-snapshot-000000.pkl"
    path.write_bytes(edm_pickle_bytes(EDMPrecondLike(unet, **precond), request.param, precond))
    return unet, path


def test_the_pickle_is_read_as_records_and_its_code_never_runs(edm_pkl, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the embedded module source would create a file here
    data = read_edm_pickle(edm_pkl[1])
    assert set(data) == {"ema", "loss_fn", "augment_pipe", "dataset_kwargs"}
    assert isinstance(data["ema"], PersistentRecord) and data["ema"].class_name == "EDMPrecond"
    unet = data["ema"].state["_modules"]["model"]
    assert unet.class_name == "DhariwalUNet" and unet.init_kwargs["model_channels"] == 128
    assert isinstance(unet.init_kwargs["init_weight"], float)  # a numpy float64, decoded from its bytes
    import hashlib

    assert unet.module_sha256 == hashlib.sha256(MODULE_SOURCE.encode()).hexdigest()
    assert data["dataset_kwargs"]["xflip"] is False and not list(tmp_path.iterdir())


def test_an_edm_network_converts_and_agrees(edm_pkl, tmp_path):
    unet, path = edm_pkl
    out = convert_edm(path, tmp_path / "model")
    teacher = load_adm_teacher(out / "teacher")
    assert isinstance(teacher, EDMPrecond)
    config = load_config(out / "teacher")
    assert config["precond"] == {"type": "edm", "sigma_data": 0.5, "sigma_min": 0.0, "sigma_max": float("inf")}
    assert config["adm"]["min_channels_per_group"] == 4 and config["source"]["format"] == "edm"
    size = int(next(iter(unet.enc)).split("x")[0])  # the first encoder block is "{R}x{R}_conv"
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.nn.functional.one_hot(torch.tensor([0, 3]), 4).double() if unet.map_label is not None else None
    c_noise = torch.tensor([-1.5, 1.1], dtype=torch.float64)
    net = teacher.net.double()
    with torch.no_grad():  # the backbones in float64; EDM computes its embedding frequencies in float32
        torch.testing.assert_close(
            net(x, c_noise, labels), unet.double().forward_unet(x, c_noise, labels), rtol=0, atol=1e-5
        )
        sigma = torch.tensor([0.05, 7.0])  # the denoisers as they run (float32)
        cond = (
            labels.float() if labels is not None else torch.zeros(2, 0)
        )  # unconditional: the toolkit passes some cond
        ours = teacher.float()(x.float(), sigma, cond)
        theirs = unet.float()(x.float(), sigma, cond if labels is not None else None, input_in_minus_one_one=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_iddpm_precond_becomes_the_cosine_vp_teacher(tmp_path):
    unet = _edm_net(out_channels=6)
    pkl = tmp_path / "baseline.pkl"
    pkl.write_bytes(edm_pickle_bytes(EDMPrecondLike(unet, **PRECOND), {**UNET, "out_channels": 6}, {}, "iDDPMPrecond"))
    teacher = load_adm_teacher(convert_edm(pkl, tmp_path / "model") / "teacher")
    assert isinstance(teacher, VPEpsDenoiser) and teacher.schedule == "cosine" and teacher.net.config.learn_sigma


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_a_pickle_that_runs_a_command_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"ema": Malicious(f"touch {marker}")}))
    with pytest.raises(CheckpointError, match=r"evil\.pkl: refusing to load the global posix\.system;"):
        convert_edm(evil, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()
    # The same call hidden where a tensor's storage bytes go (those are read with torch.load(weights_only=True)).
    hidden = pickle.dumps({"ema": torch.zeros(2)}).replace(b"_load_from_bytes", b"_load_from_bytez")
    (tmp_path / "hidden.pkl").write_bytes(hidden)
    with pytest.raises(CheckpointError, match="refusing to load the global torch.storage._load_from_bytez"):
        read_edm_pickle(tmp_path / "hidden.pkl")
    # A storage whose bytes are themselves a pickle running the command.
    (tmp_path / "storage.pkl").write_bytes(pickle.dumps(_LoadFromBytes(pickle.dumps(Malicious(f"touch {marker}")))))
    with pytest.raises(CheckpointError, match="a tensor storage is not plain data"):
        read_edm_pickle(tmp_path / "storage.pkl")
    assert not marker.exists()


class _LoadFromBytes:
    """Pickles as ``torch.storage._load_from_bytes(payload)``."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.payload,)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (
            lambda p: p.write_bytes(pickle.dumps({"ema": _Foreign()})),
            "_Foreign; not an EDM network pickle",
        ),
        (lambda p: p.write_bytes(pickle.dumps(eval)), "refusing to load the global builtins.eval"),
        (lambda p: p.write_bytes(b"\x80\x04\x95\x10\x00"), "truncated or corrupt"),
        (lambda p: p.write_bytes(pickle.dumps({"ema": 3})), "holds no EDM network"),
    ],
    ids=["foreign class", "builtin", "truncated", "no network"],
)
def test_bad_pickles_are_one_line_errors(tmp_path, make, needle):
    make(tmp_path / "bad.pkl")
    with pytest.raises(CheckpointError) as err:
        convert_edm(tmp_path / "bad.pkl", tmp_path / "out")
    assert needle in str(err.value) and "\n" not in str(err.value) and not (tmp_path / "out").exists()


class _Foreign:
    """A class of the pickle's own (``find_class`` would import and call it)."""


def test_truncated_pickles_and_other_edm_networks_are_refused(edm_pkl, tmp_path):
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(edm_pkl[1].read_bytes()[:100000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        convert_edm(cut, tmp_path / "out")
    song = tmp_path / "song.pkl"
    song.write_bytes(edm_pickle_bytes(EDMPrecondLike(_edm_net(), **PRECOND), UNET, PRECOND, "VPPrecond"))
    with pytest.raises(CheckpointError, match="the network is a VPPrecond; only EDMPrecond and iDDPMPrecond"):
        convert_edm(song, tmp_path / "out")
    song.write_bytes(edm_pickle_bytes(EDMPrecondLike(_edm_net(), **PRECOND), UNET, PRECOND, unet_class="SongUNet"))
    with pytest.raises(CheckpointError, match="the backbone is a SongUNet; only DhariwalUNet"):
        convert_edm(song, tmp_path / "out")
    assert not (tmp_path / "out").exists()
