"""Benchmarks and comparison recipes, run as `python -m kgan.benchmarks.NAME`.

Each module reproduces one measured figure of the README or a model card; its
docstring gives the command and what it measures.
"""
