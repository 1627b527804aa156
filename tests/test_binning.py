"""Time in seconds (issue 14): temporal binning in preprocessing, stored with the checkpoint and
applied the same way in train, finetune, evaluate, forecast and live; rate warnings."""
from pathlib import Path

import numpy as np
import pytest

from poco_core.base.errors import PocoError
from poco_core.data.io import load_recording
from poco_core.data.preprocess import PreprocessConfig, PreprocessState, bin_frames, prepare
from poco_core.data.recording import Recording

DATA = Path(__file__).parent / "data"
SIM = DATA / "suite2p_sim/suite2p/plane0"
TINY = dict(context=8, horizon=2, hidden=16, d_model=16, self_attn_heads=2, self_attn_head_dim=8, cross_head_dim=8)
FAST = dict(batch_size=4, max_val_windows=8, eval_batch_size=64, device="cpu")


def test_binning_averages_runs_and_is_stored_in_the_state():
    rec = load_recording(SIM)  # real suite2p 1.1.0 output, 30 Hz, 400 frames
    sd = prepare(rec, PreprocessConfig(target_fs=5.0, zscore=False, block_len=20)).sessions[0]
    assert sd.state.bin == 6 and sd.state.fs == 5.0 and sd.state.input_fs == 30.0
    raw = np.asarray(rec.traces, dtype=np.float64)
    np.testing.assert_allclose(sd.values, raw[:396].reshape(66, 6, -1).mean(axis=1), rtol=1e-5)
    back = PreprocessState.from_dict(sd.state.to_dict())
    assert back.bin == 6 and back.fs == 5.0
    np.testing.assert_array_equal(back.apply(rec.traces), sd.values)
    assert "binned 6 frames into 1: 30 Hz -> 5 Hz" in sd.state.report()
    z = prepare(rec, PreprocessConfig(bin_frames=6, block_len=20)).sessions[0]
    assert z.values.shape == (66, 53) and np.allclose(z.values.std(axis=0), 1, atol=1e-4)  # fitted on binned frames


def test_uneven_target_rate_is_noted():
    rec = Recording(traces=np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32), fs=30.0, roi_ids=list("abc"))
    state = prepare(rec, PreprocessConfig(target_fs=4.0, block_len=20)).sessions[0].state
    assert state.bin == 8 and any("not a whole number" in n for n in state.notes)
    assert bin_frames(np.arange(10.0)[:, None], 3).ravel().tolist() == [1.0, 4.0, 7.0]


def test_binned_checkpoint_is_applied_in_evaluate_finetune_forecast(tmp_path):
    from poco_core.analysis.evaluate import evaluate
    from poco_core.analysis.forecast import forecast
    from poco_core.live.session import LiveSession
    from poco_core.training.finetune import finetune
    from poco_core.training.restore import load_model
    from poco_core.training.train import train

    rec = load_recording(SIM)
    run = train([rec], "poco", steps=2, val_every=2, checkpoint=tmp_path / "m.pt", mlp_warmup=False,  # embeddings in use
                preprocess=PreprocessConfig(target_fs=5.0, block_len=66), **TINY, **FAST)
    events = list(run.events())
    start = events[0]
    assert start["fs"] == {"suite2p_sim": 5.0} and start["warnings"] == []
    assert any("binned 6 frames" in s for s in start["preprocess_report"]["suite2p_sim"])
    model = load_model(tmp_path / "m.pt")
    assert model.poco_meta.preprocess_config.target_fs == 5.0
    assert evaluate(model, [rec]).score == pytest.approx(run.result["test"]["score"])
    fc = forecast(model, rec, 20)
    assert fc.fs == 5.0 and fc.bin == 6 and fc.time_s[0, 0] == pytest.approx(21 / 5.0)
    with pytest.raises(PocoError, match="t must be in"):
        forecast(model, rec, 66)  # 400 frames binned by 6: model frames 0..65
    # finetuning on a 15 Hz session with the checkpoint's preprocessing: binned by 3 to 5 Hz, no warning
    slow = Recording(traces=np.asarray(rec.traces)[::2].copy(), fs=15.0, roi_ids=rec.roi_ids, session="half")
    ft = finetune(tmp_path / "m.pt", [slow], steps=2, val_every=2, checkpoint=tmp_path / "ft.pt", **FAST)
    start = next(iter(ft.events()))
    assert start["fs"] == {"half": 5.0} and start["warnings"] == []
    ft.wait()
    assert load_model(tmp_path / "ft.pt").poco_meta.preprocess["half"].bin == 3
    check_live_binning(model, rec)


def check_live_binning(model, rec: Recording) -> None:
    """Live frames arriving in uneven chunks are binned as offline, and forecasts are made from the binned frames."""
    import torch

    from poco_core.live import LiveRecording, LiveSession, OnlineConfig
    from poco_core.models.inference import predict

    raw = np.asarray(rec.traces, dtype=np.float32)
    live = LiveRecording(rec.n_rois, 30.0, rec.roi_ids)
    session = LiveSession(live, model, OnlineConfig(zscore="none"), session="suite2p_sim", precision="fp32")
    units, made, sizes = [], [], [1, 7, 2, 11, 6, 5]
    lo = 0
    while lo < len(raw):
        live.append(raw[lo:lo + sizes[len(units) % len(sizes)]])
        lo += sizes[len(units) % len(sizes)]
        update = session.step()
        units.append(update.units)
        made += update.forecasts
    assert session.fs == 5.0 and session.preprocessor.pending == 400 % 6 and session.known_session
    binned = bin_frames(raw, 6)
    np.testing.assert_allclose(np.concatenate(units), binned, rtol=1e-5, atol=1e-6)
    assert "binning: 6 frames into 1, 30 Hz -> 5 Hz" in session.describe() and session.notes == []
    state = session.preprocessor.to_state(list(rec.roi_ids))  # what an adapted checkpoint stores
    assert (state.bin, state.fs, state.input_fs) == (6, 5.0, 30.0)
    assert made and made[-1].t == len(binned) - 1
    c = model.config.context
    expect = predict(model, [torch.from_numpy(binned[None, -c:])], ["suite2p_sim"], "fp32")[0][0].numpy()
    np.testing.assert_allclose(made[-1].values, expect, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("zscore", ["running", "frozen"])
def test_online_binning_frame_by_frame(zscore):
    """Frames arriving one at a time: nothing until a bin is complete, then its mean, whatever the z-score mode."""
    from poco_core.live.online import OnlineConfig, OnlinePreprocessor

    raw = np.random.default_rng(3).normal(size=(40, 5)).astype(np.float32)
    pre = OnlinePreprocessor(5, 30.0, OnlineConfig(zscore=zscore, calibration=6, bin=4))
    out = [pre.push(raw[i:i + 1])[0] for i in range(len(raw))]
    assert [len(u) for u in out[:8]] == [0, 0, 0, 1, 0, 0, 0, 1] and pre.fs == 7.5
    np.testing.assert_allclose(np.concatenate(out), bin_frames(raw, 4), rtol=1e-5)


def test_live_binning_follows_the_checkpoints_target_rate():
    from types import SimpleNamespace

    from poco_core.live.session import live_binning

    def model(config: PreprocessConfig, fs: float):
        state = SimpleNamespace(fs=fs)
        return SimpleNamespace(poco_meta=SimpleNamespace(preprocess_config=config, preprocess={"s": state}))

    target = model(PreprocessConfig(target_fs=5.0), 5.0)
    assert live_binning(target, 30.0) == (6, []) and live_binning(target, 15.0) == (3, [])
    n, notes = live_binning(target, 24.0)  # 24 / 5 is not whole: binned by 5 to 4.8 Hz, warned
    assert n == 5 and "not a whole number" in notes[0] and "trained at 5 Hz" in notes[1]
    fixed = model(PreprocessConfig(bin_frames=6), 5.0)  # a fixed bin: a 60 Hz source gives 10 Hz frames
    n, notes = live_binning(fixed, 60.0)
    assert n == 6 and "10 Hz after binning by 6" in notes[0]
    assert live_binning(None, 30.0) == (1, []) and live_binning(model(PreprocessConfig(), 30.0), 30.0) == (1, [])


def test_rate_warnings_for_mixed_and_new_rates(tmp_path):
    from poco_core.training.finetune import finetune_events
    from poco_core.training.train import train

    rng = np.random.default_rng(1)
    recs = [Recording(traces=rng.normal(size=(300, 4)).astype(np.float32), fs=fs, roi_ids=list("abcd"), session=name)
            for name, fs in (("fast", 30.0), ("slow", 1.5))]
    run = train(recs, "nlinear", steps=2, val_every=2, checkpoint=tmp_path / "m.pt", context=8, horizon=2,
                preprocess=PreprocessConfig(block_len=60), **FAST)
    events = list(run.events())
    assert "different rates" in events[0]["warnings"][0] and "0.267 to 5.33 s" in events[0]["warnings"][0]
    assert events[1] == {"type": "warning", "message": events[0]["warnings"][0]}
    other = Recording(traces=rng.normal(size=(300, 4)).astype(np.float32), fs=10.0, roi_ids=list("abcd"), session="new")
    start = next(finetune_events(tmp_path / "m.pt", [other], steps=1, checkpoint=tmp_path / "f.pt", **FAST))
    assert "the model was trained at 1.5 Hz, 30 Hz" in start["warnings"][0]


def test_evaluate_warns_when_a_recording_comes_at_another_rate(tmp_path, capsys):
    from dataclasses import replace

    from poco_core.cli.main import main
    from poco_core.data.io import save_recording
    from poco_core.training.train import train

    rec = Recording(traces=np.random.default_rng(2).normal(size=(300, 4)).astype(np.float32), fs=10.0,
                    roi_ids=list("abcd"), session="s")
    train([rec], "nlinear", steps=2, val_every=2, checkpoint=tmp_path / "m.pt", context=8, horizon=2,
          preprocess=PreprocessConfig(block_len=60), **FAST).wait()
    path = save_recording(replace(rec, fs=20.0), tmp_path / "s.h5")
    assert main(["evaluate", str(tmp_path / "m.pt"), str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: session 's': the recording is at 20 Hz but the model was trained on it at 10 Hz" in err
    assert "context 8 frames = 0.8 s at 10 Hz" in err and "preprocessing s: 4 of 4 ROIs kept" in err
