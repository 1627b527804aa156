"""The `poco` command (`main.py`), one subcommand module per GUI action. Top of the engine:
may import every layer; nothing in poco_core or poco_napari imports it."""
