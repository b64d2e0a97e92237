"""The error of the PEtab/SBML import."""

from __future__ import annotations

from .._errors import DataError


class PetabError(DataError):
    """A PEtab problem or its SBML model is invalid or uses what pyude does not support.

    The message names the file, the row and the id."""
