"""PEtab import: an SBML model and PEtab v1 tables, or PEtab v2 tables with the SciML
extension (networks, hybridization, array files) -> a :class:`pyude.Problem`.

``pyude.petab.load("problem.yaml")`` returns a :class:`PetabProblem` (see docs/petab.md).
"""

from ._errors import PetabError
from ._load import PetabProblem, is_petab_file, load
from ._sbml import read_sbml

__all__ = ["load", "PetabProblem", "PetabError", "is_petab_file", "read_sbml"]
