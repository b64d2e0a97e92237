"""The Julia engine (SciML through juliacall): not part of this version yet."""

from __future__ import annotations

from ..._errors import EngineUnavailable


class JuliaEngine:
    name = "julia"

    def __init__(self):
        raise EngineUnavailable(
            "the Julia engine is not available in this version of pyude; use engine='jax' (the default)"
        )
