"""Matplotlib figures as PNG bytes, for asset metadata. Imported lazily by the plotting
functions (matplotlib is not needed to load the definitions)."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """Lay out ``fig``, render it to PNG bytes and close it (figures leak memory otherwise)."""
    plt = pyplot()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()
