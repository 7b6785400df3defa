"""Liquidation: liquidation orders, insurance fund, auto-deleveraging (with the risk engine).

The risk phase exists in ``stf.transition`` and does nothing yet.
"""
