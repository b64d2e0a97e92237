"""PEtab SciML networks and arrays: the net YAML and the HDF5 parameter/input/output files.

``load_net(path)`` reads a net YAML into a :class:`pyude.spec.GraphNetwork`;
``read_parameters(path)`` reads a parameter file into a params dict
(``<net>.<layer_id>.weight`` ...); ``read_arrays(path)`` reads input/output files;
``read_array_file(path)`` reads a problem's array file (parameters and per-condition inputs);
``set_network_parameters`` applies a PEtab parameter-table value to a network's
parameters (``net1.parameters[layer1].bias``). A PEtab problem importer builds on these.
"""

from ._hdf5 import read_array_file, read_arrays, read_parameters, set_network_parameters
from ._net import load_net, net_from_dict

__all__ = ["load_net", "net_from_dict", "read_parameters", "read_arrays", "read_array_file", "set_network_parameters"]
