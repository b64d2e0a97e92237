"""Readers of exchange formats (PEtab SciML networks and arrays: :mod:`pyude.io.petab_sciml`)."""
