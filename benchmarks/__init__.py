"""Performance benchmarks: each measures the product side by side with a baseline and reports the ratio.

Run them all with `python -m benchmarks.run` (see benchmarks/run.py). They are not tests:
nothing here fails the build; a missed target is reported in the table.
"""
