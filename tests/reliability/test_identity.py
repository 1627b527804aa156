"""Animal identity: a recording matched to a trained session must be the one it was trained on
(fingerprint: ROI ids, shape, hash of sampled traces); the same recording twice is refused."""
from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import TRAIN_FAST, tiny_cohort

from poco_core.base.errors import PocoError, RecordingError
from poco_core.data.identity import check_identity, fingerprint
from poco_core.data.io import load_recording, save_recording
from poco_core.training.restore import load_model


@pytest.fixture()
def impostor(work):
    """Another animal saved under the first one's session name, with the same ROI count and ids."""
    other = tiny_cohort(seed=7)[0]
    rec = load_recording(work["rec1"])
    assert other.n_rois == rec.n_rois
    path = work["dir"] / "other_fish.h5"
    save_recording(replace(other, session=rec.session, roi_ids=rec.roi_ids), path)
    return path


@pytest.mark.parametrize("command", ["evaluate", "forecast", "embed"])
def test_another_animal_with_the_same_name_is_refused(poco, work, impostor, snap, command):
    s = snap()
    args = {"evaluate": ["evaluate", work["ckpt"], impostor, "--device", "cpu"],
            "forecast": ["forecast", work["ckpt"], impostor, "--t", "20", "--device", "cpu"],
            "embed": ["embed", work["ckpt"], impostor, "--clusters", "2"]}[command]
    code, _, err = poco(*args)
    assert code == 2 and str(impostor) in err and "finetune" in err
    s.assert_unchanged()


def test_finetune_with_a_known_name_but_another_animal_is_refused(poco, work, impostor, snap):
    s = snap()
    code, _, err = poco("finetune", work["ckpt"], impostor, "--steps", "1", "--out", work["dir"] / "ft.pt",
                        "--device", "cpu")
    assert code == 2 and str(impostor) in err and "distinct session name" in err
    s.assert_unchanged()


def test_same_recording_still_evaluates(poco, work):
    code, _, err = poco("evaluate", work["ckpt"], work["rec1"], work["rec2"], "--device", "cpu")
    assert code == 0, err


def test_same_file_twice_is_refused(poco, work, snap):
    s = snap()
    code, _, err = poco("train", work["rec1"], work["rec1"], "--steps", "1", "--out", work["dir"] / "m.pt", *TRAIN_FAST)
    assert code == 2 and str(work["rec1"]) in err and "twice" in err
    s.assert_unchanged()


def test_a_copy_under_another_name_is_refused(poco, work, snap):
    copy = work["dir"] / "copy.h5"
    shutil.copyfile(work["rec1"], copy)
    s = snap()
    code, _, err = poco("train", work["rec1"], copy, "--steps", "1", "--out", work["dir"] / "m.pt", *TRAIN_FAST)
    assert code == 2 and "copy.h5" in err and "same recording" in err
    s.assert_unchanged()


def test_checkpoint_stores_one_fingerprint_per_session(work):
    info = load_model(work["ckpt"]).poco_meta
    assert set(info.fingerprints) == {"fish01", "fish02"}
    assert info.fingerprints["fish01"] == fingerprint(load_recording(work["rec1"]))


def test_fingerprint_sees_a_single_changed_sampled_value():
    rec = tiny_cohort()[0]
    traces = np.array(rec.traces)
    traces[0, 3] += 1e-3
    with pytest.raises(RecordingError, match="different traces"):
        check_identity(replace(rec, traces=traces), fingerprint(rec), rec.session)


def test_live_checks_only_the_rois(work):
    """A live recording of the trained animal has new frames by nature: only its ROIs must match."""
    rec = tiny_cohort()[0]
    shorter = replace(rec, traces=np.array(rec.traces)[:100])
    check_identity(shorter, fingerprint(rec), rec.session, traces=False)
    with pytest.raises(RecordingError, match="ROIs differ"):
        check_identity(shorter.select_rois(np.arange(5)), fingerprint(rec), rec.session, traces=False)


def test_legacy_checkpoint_without_fingerprints_still_loads():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
    ckpts = sorted(folder.glob("*.pt"))
    assert ckpts, "the legacy checkpoint fixture is missing"
    assert load_model(ckpts[0]).poco_meta.fingerprints == {}


def test_api_refuses_duplicates_too():
    from poco_core.training.train import train_events

    rec = tiny_cohort()[0]
    with pytest.raises(PocoError, match="same recording"):
        next(iter(train_events([rec, replace(rec, session="again")], "nlinear", steps=1, device="cpu")))
