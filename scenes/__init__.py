"""The pieces this project performs, one package each (``builtin``: the engine's own demo scenes;
``ldd``: "Losses, Dissonances, and Distortions"). The engine finds them by name through the
``showrunner.pieces`` entry points (pyproject.toml): nothing here is imported until a setlist asks.
"""
