"""etagkit's benchmarks: every scenario against its peers and floors, ratios in one run.

Run ``python -m benchmarks [--quick] [--only NAME]``; see ``benchmarks/README.md``.
"""
