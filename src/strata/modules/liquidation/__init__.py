"""Liquidation: liquidation orders, insurance fund, auto-deleveraging (arrives with the risk engine).

The risk phase exists in ``stf.transition`` and does nothing yet.
"""
