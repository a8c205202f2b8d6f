"""pagoda-inv: image inverse problems and controlled generation with PaGoDA one-step generators.

The distribution is ``pagoda-inv``; the import name is ``pagoda_inverse``. Importing the package is cheap: the
public functions below load torch and the models on first use.

>>> import pagoda_inverse
>>> pagoda_inverse.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "load_model": "pagoda_inverse.core.model",
    "PagodaModel": "pagoda_inverse.core.model",
    "generate": "pagoda_inverse.control.generate",
    "encode": "pagoda_inverse.control.codec",
    "decode": "pagoda_inverse.control.codec",
    "solve": "pagoda_inverse.solvers",
    "default_solver": "pagoda_inverse.solvers",
    "solve_tiled": "pagoda_inverse.solvers.tiled",
    "solve_image": "pagoda_inverse.solvers.image",
    "SOLVERS": "pagoda_inverse.solvers",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pagoda_inverse' has no attribute {name!r}")
