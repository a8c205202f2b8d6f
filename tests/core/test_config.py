"""Presets, overrides and the resume guard."""

import pytest

from pagoda_inverse.train.config import PRESETS, from_dict, resolve, to_dict
from pagoda_inverse.train.state import check_resume_config, new_run_dir, write_config
from pagoda_inverse.utils.errors import UserError


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_every_preset_round_trips_through_json(kind):
    import json

    for preset in PRESETS[kind]:
        cfg = resolve(kind, preset)
        assert from_dict(kind, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_overrides_and_unknown_preset():
    cfg = resolve("teacher", "smoke", steps=3, root="/data")  # flat keys reach the loop and data sections
    assert cfg.loop.steps == 3 and cfg.loop.batch_size == 32 and cfg.data.root == "/data" and cfg.data.limit == 256
    cfg = resolve("posterior", "smoke", emb_dim=8, lr=1e-4)
    assert cfg.net.emb_dim == 8 and cfg.net.channels == (8, 8, 8) and cfg.loop.lr == 1e-4 and cfg.loop.steps == 6
    with pytest.raises(UserError, match="unknown teacher preset 'big'"):
        resolve("teacher", "big")
    # An unknown key, in an override or a saved config, is one line naming it and the valid ones.
    with pytest.raises(UserError, match="teacher config: unknown key 'stepz'; valid: .*steps"):
        resolve("teacher", "smoke", stepz=3)
    with pytest.raises(UserError, match="posterior config.data: unknown key 'rez'; valid: dataset, root, resolution"):
        from_dict("posterior", {"data": {"rez": 32}})


def test_resume_refuses_another_config_or_kind(tmp_path):
    run = new_run_dir(tmp_path, "teacher-smoke")
    cfg = resolve("teacher", "smoke")
    write_config(run, "teacher", to_dict(cfg))
    check_resume_config(run, "teacher", to_dict(cfg))  # same config: accepted
    with pytest.raises(UserError, match="differs from the requested config in \\['loop.steps'\\]"):
        check_resume_config(run, "teacher", to_dict(resolve("teacher", "smoke", steps=99)))
    with pytest.raises(UserError, match="not a 'decoder' run"):
        check_resume_config(run, "decoder", to_dict(resolve("decoder", "smoke")))
    assert new_run_dir(tmp_path, "x").name.startswith("00001-")


def test_a_run_saved_before_a_field_existed_resumes_at_its_default(tmp_path):
    run = new_run_dir(tmp_path, "grow-smoke")
    saved = to_dict(resolve("grow", "smoke"))
    del saved["precision"]  # a run of an earlier version: trained in fp32, the field's default
    write_config(run, "grow", saved)
    check_resume_config(run, "grow", to_dict(resolve("grow", "smoke")))
    with pytest.raises(UserError, match="\\['precision'\\]"):
        check_resume_config(run, "grow", to_dict(resolve("grow", "smoke", precision="bf16")))
    write_config(run, "grow", {**saved, "from_the_future": 1})
    with pytest.raises(UserError, match="not a 'grow' config of this version"):
        check_resume_config(run, "grow", to_dict(resolve("grow", "smoke")))


def test_a_config_saved_before_the_sections_reads_into_them():
    """Runs and checkpoints written before the loop and net sections kept those fields flat (the decoder's rate as
    lr_g): they rebuild into the sections, so they resume and their records read."""
    flat_decoder = {"steps": 7, "batch_size": 4, "lr_g": 2e-4, "lr_d": 1e-3, "seed": 3, "upsample": "bicubic"}
    cfg = from_dict("decoder", flat_decoder)
    assert (cfg.loop.steps, cfg.loop.batch_size, cfg.loop.lr, cfg.loop.seed) == (7, 4, 2e-4, 3)
    assert cfg.upsample == "bicubic" and cfg.lr_d == 1e-3
    flat_posterior = {"family": "inpaint", "channels": [8, 16], "fill_scales": [1.0], "steps": 5, "warmup_steps": 1}
    cfg = from_dict("posterior", flat_posterior)
    assert cfg.net.channels == (8, 16) and cfg.net.fill_scales == (1.0,) and cfg.loop.steps == 5
    assert cfg == resolve("posterior", "fmnist", family="inpaint", channels=(8, 16), fill_scales=(1.0,), steps=5,
                          warmup_steps=1)  # fmt: skip
