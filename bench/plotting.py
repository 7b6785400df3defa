"""matplotlib for the benchmarks' plots: drawn to files, with no display."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, SVG text kept as text (smaller, searchable).

    Raises
    ------
    SystemExit
        If matplotlib is not installed (``pip install 'strata[plot]'``; ``make setup`` has it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        matplotlib.rcParams["svg.fonttype"] = "none"
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit(
            "plots need matplotlib: pip install 'strata[plot]' (make setup installs it)"
        ) from None
    return plt
