"""A/B experiments: the statistics of their analysis (issue 22).

Everything here works on per-variant sufficient statistics (`stats.VariantStats`), never on raw events, so
a page view reads a few numbers per variant and metric. docs/experiments.md gives the formulas.
"""
