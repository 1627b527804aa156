"""Live layer: follow a recording while it is written and forecast ahead of it.

- ``sources``: live sources (SWMR project HDF5, a folder of chunks, in-process).
- ``online``: honest online preprocessing (running or frozen statistics, causal filter).
- ``rolling``: the rolling forecaster and its running scores against copy.
- ``session``: ``LiveSession``, which ties a source, the preprocessing and the forecaster together.
- ``adapt``: ``OnlineAdapter``, finetuning while the session runs.
- ``replay``: writing a recording into a growing file at its rate, to try all this without a microscope.

May import: ``base``, ``data``, ``models``, ``training``, ``analysis``.
"""
from poco_core.live.adapt import OnlineAdapter
from poco_core.live.online import OnlineConfig, OnlinePreprocessor
from poco_core.live.replay import H5LiveWriter, replay
from poco_core.live.rolling import Forecast, History, RollingForecaster, Score
from poco_core.live.session import LiveSession, LiveUpdate, live_model
from poco_core.live.sources import (
           FolderSource,
           H5LiveSource,
           LiveRecording,
           LiveSource,
           LiveSourceError,
           open_source,
)

__all__ = ["OnlineAdapter", "OnlineConfig", "OnlinePreprocessor", "H5LiveWriter", "replay", "Forecast", "History",
           "RollingForecaster", "Score", "LiveSession", "LiveUpdate", "live_model", "FolderSource", "H5LiveSource",
           "LiveRecording", "LiveSource", "LiveSourceError", "open_source"]
