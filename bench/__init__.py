"""Airlock's benchmark harness: ``python -m bench`` (or ``make bench``). See :mod:`bench.run`."""
