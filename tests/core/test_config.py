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
    cfg = resolve("teacher", "smoke", steps=3, root="/data")
    assert cfg.steps == 3 and cfg.data.root == "/data" and cfg.data.limit == 256
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
    with pytest.raises(UserError, match="differs from the requested config in \\['steps'\\]"):
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
