"""Funding: the funding rate and cumulative funding index (arrives with the risk-engine issue).

The phase that settles funding exists in the prologue of ``stf.transition`` and does nothing yet.
"""
