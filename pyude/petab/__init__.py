"""PEtab v1 import: an SBML model and PEtab tables -> a :class:`pyude.Problem`.

``pyude.petab.load("problem.yaml")`` returns a :class:`PetabProblem` (see docs/petab.md).
"""

from ._errors import PetabError
from ._load import PetabProblem, is_petab_file, load
from ._sbml import read_sbml

__all__ = ["load", "PetabProblem", "PetabError", "is_petab_file", "read_sbml"]
