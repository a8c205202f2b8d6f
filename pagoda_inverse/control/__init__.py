"""Controlled generation: class / prompt conditioning with classifier-free guidance."""
