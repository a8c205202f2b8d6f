"""Other toolkits' formats and APIs: checkpoints from elsewhere as model folders, and pagoda-inv inside deepinv.

- :mod:`.guided_diffusion`, :mod:`.diffusers_unet`, :mod:`.edm_pickle`: ``pagoda-inv convert --from
  guided-diffusion|diffusers|edm``, each writing a model folder through :mod:`.model_folder`; :mod:`.adm_presets`
  names the released ADM configurations.
- :mod:`.deepinv_model`: any solver as a deepinv ``Reconstructor`` (:func:`to_deepinv_model`), for
  ``deepinv.test(model, loader, physics)``. The operator adapter (our operators <-> deepinv physics) is
  :mod:`pagoda_inverse.ops.deepinv_adapter`.

Importing this package imports neither torch nor deepinv; ``to_deepinv_model`` loads on first use.
"""

from __future__ import annotations

import importlib

_LAZY = {"to_deepinv_model": "pagoda_inverse.interop.deepinv_model"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pagoda_inverse.interop' has no attribute {name!r}")
