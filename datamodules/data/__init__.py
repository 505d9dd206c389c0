"""Data files shipped with hybridzoo.datamodules (read with importlib.resources)."""
