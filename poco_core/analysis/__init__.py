"""Analysis layer: evaluation tables, forecasts, unit-embedding analysis and region similarity.
May import: `base`, `data`, `models`, `training`."""
