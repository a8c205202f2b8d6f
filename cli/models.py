"""``pagoda-inv models``: list the embedded models and their cards."""

from __future__ import annotations


def models() -> None:
    """List the embedded models (name, resolutions, first line of the model card)."""
    from pagoda_inverse.core.checkpoint import load_config
    from pagoda_inverse.core.model import MODELS_DIR, embedded_models

    names = embedded_models()
    if not names:
        print("no embedded models installed")
    for name in names:
        folder = MODELS_DIR / name
        card = folder / "card.md"
        summary = card.read_text().splitlines()[0].lstrip("# ") if card.is_file() else ""
        parts = [p for p in ("teacher", "decoder") if (folder / p / "config.json").is_file()]
        res = {p: load_config(folder / p)["unet"] for p in parts}
        desc = ", ".join(f"{p} {u['resolution'] * 2 ** len(u.get('grow_channels', []))}px" for p, u in res.items())
        print(f"{name:16s} {desc:32s} {summary}")
