"""Outputs respect the umask (issue 14 bug 9: checkpoints were 0600, unreadable by lab-mates)."""
import os
import stat

import numpy as np
import pytest

from poco_core.data.io import save_recording
from poco_core.training.checkpoint import save_checkpoint
from test_io_h5 import make_recording


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_checkpoint_and_recording_modes_follow_umask(tmp_path, umask):
    ckpt = save_checkpoint(tmp_path / "m.pt", {"x": np.zeros(3)})
    rec = save_recording(make_recording(), tmp_path / "r.h5")
    for path in (ckpt, rec):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert os.umask(umask) == umask  # file_mode() left the umask as it was
