"""The engine: ``run(config)`` yields events; evaluation protocol; distributed helpers."""
