"""Reference outputs from PyTorch for layer configurations the PEtab SciML cases do not cover.

Run with a Python that has torch (not a pyude dependency), from the repository root:
    python tools/torch_layer_refs.py
It writes tests/data/torch_refs.yaml (the networks, in pyude's graph-network form) and
tests/data/torch_refs.npz (inputs, parameters, outputs; float64), which
tests/test_petab_sciml_networks.py compares pyude against. Modules are built from the
same constructor args as the YAML (getattr(torch.nn, layer_type)(**args)), in float64,
in training mode (BatchNorm: batch statistics, as the PEtab SciML references).
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

torch.set_default_dtype(torch.float64)
torch.manual_seed(0)

LAYERS = [
    ("conv1d_stride_dil_groups", "Conv1d", dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=2,
                                                dilation=2, groups=2), [(2, 4, 11)]),
    ("conv2d_same_reflect", "Conv2d", dict(in_channels=2, out_channels=3, kernel_size=[3, 4], padding="same",
                                           padding_mode="reflect"), [(2, 7, 8)]),
    ("conv2d_circular", "Conv2d", dict(in_channels=2, out_channels=2, kernel_size=3, padding=1,
                                       padding_mode="circular"), [(1, 2, 5, 6)]),
    ("conv3d_replicate_stride", "Conv3d", dict(in_channels=1, out_channels=2, kernel_size=2, stride=[1, 2, 2],
                                               padding=1, padding_mode="replicate"), [(1, 4, 5, 6)]),
    ("convT1d_stride_outpad_groups", "ConvTranspose1d", dict(in_channels=4, out_channels=2, kernel_size=3, stride=3,
                                                             padding=1, output_padding=2, groups=2), [(4, 5)]),
    ("convT2d_dilation", "ConvTranspose2d", dict(in_channels=2, out_channels=3, kernel_size=[2, 3], stride=2,
                                                 padding=[2, 1], dilation=[2, 1]), [(1, 2, 4, 5)]),
    ("convT3d_nobias", "ConvTranspose3d", dict(in_channels=2, out_channels=2, kernel_size=2, stride=2, bias=False),
     [(2, 3, 3, 3)]),
    ("maxpool1d_pad_dil", "MaxPool1d", dict(kernel_size=3, stride=2, padding=1, dilation=2), [(2, 3, 12)]),
    ("maxpool2d", "MaxPool2d", dict(kernel_size=[2, 3], stride=[2, 1]), [(3, 6, 7)]),
    ("avgpool1d_pad", "AvgPool1d", dict(kernel_size=3, stride=2, padding=1), [(2, 9)]),
    ("avgpool2d_no_count_pad", "AvgPool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
     [(1, 2, 7, 8)]),
    ("avgpool3d_divisor", "AvgPool3d", dict(kernel_size=2, divisor_override=3), [(2, 4, 4, 5)]),
    ("lppool1d", "LPPool1d", dict(norm_type=2, kernel_size=3, stride=2), [(2, 9)]),
    ("lppool2d_p4", "LPPool2d", dict(norm_type=4, kernel_size=2), [(1, 4, 6)]),
    ("adaptiveavg1d", "AdaptiveAvgPool1d", dict(output_size=4), [(2, 7)]),
    ("adaptiveavg2d_none", "AdaptiveAvgPool2d", dict(output_size=[3, None]), [(2, 7, 5)]),
    ("adaptivemax2d", "AdaptiveMaxPool2d", dict(output_size=[3, 2]), [(1, 2, 7, 5)]),
    ("adaptivemax3d", "AdaptiveMaxPool3d", dict(output_size=2), [(2, 5, 3, 4)]),
    ("bilinear", "Bilinear", dict(in1_features=3, in2_features=4, out_features=2), [(5, 3), (5, 4)]),
    ("batchnorm2d", "BatchNorm2d", dict(num_features=3), [(4, 3, 2, 5)]),
    ("batchnorm1d_3d_noaffine", "BatchNorm1d", dict(num_features=3, affine=False), [(4, 3, 6)]),
    ("instancenorm1d_unbatched", "InstanceNorm1d", dict(num_features=3, affine=True), [(3, 8)]),
    ("instancenorm3d", "InstanceNorm3d", dict(num_features=2), [(2, 2, 3, 4, 3)]),
    ("layernorm_2d_shape", "LayerNorm", dict(normalized_shape=[3, 4]), [(2, 3, 4)]),
    ("layernorm_nobias", "LayerNorm", dict(normalized_shape=[4], bias=False), [(5, 4)]),
    ("flatten_middle", "Flatten", dict(start_dim=1, end_dim=2), [(2, 3, 4, 5)]),
    ("linear_batched", "Linear", dict(in_features=4, out_features=3), [(2, 5, 4)]),
]
FUNCTIONS = [  # (target, kwargs) called as torch.nn.functional.<target>(x, **kwargs), or torch.<target>
    ("relu", {}), ("relu6", {}), ("elu", {"alpha": 0.7}), ("selu", {}), ("celu", {"alpha": 1.3}),
    ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("leaky_relu", {"negative_slope": 0.2}),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("hardsigmoid", {}), ("hardswish", {}), ("sigmoid", {}),
    ("logsigmoid", {}), ("tanh", {}), ("tanhshrink", {}), ("softplus", {"beta": 2.0, "threshold": 3.0}),
    ("softsign", {}), ("silu", {}), ("mish", {}), ("softmax", {"dim": 1}), ("log_softmax", {"dim": -1}),
    ("flatten", {"start_dim": 1}), ("unsqueeze", {"dim": 1}), ("transpose", {"dim0": 0, "dim1": 2}),
]


def _net(inputs, node_target, op, args_kwargs, layers=()):
    names = [f"x{i}" for i in range(len(inputs))]
    return {
        "inputs": [{"input_id": n, "shape": list(s)} for n, s in zip(names, inputs)],
        "layers": list(layers),
        "forward": [{"name": n, "op": "placeholder", "target": n, "args": [], "kwargs": {}} for n in names]
        + [{"name": "y", "op": op, "target": node_target, "args": names, "kwargs": args_kwargs},
           {"name": "output", "op": "output", "target": "output", "args": ["y"], "kwargs": {}}],
    }


def main() -> None:
    nets, arrays = {}, {}
    for case, kind, args, shapes in LAYERS:
        module = getattr(torch.nn, kind)(**args)
        with torch.no_grad():
            for p in module.parameters():  # away from PyTorch's constant initialisations (norm weights = 1)
                p.copy_(torch.randn_like(p))
        xs = [torch.randn(*s) for s in shapes]
        y = module(*xs)
        nets[case] = _net(shapes, "m", "call_module", {}, [{"layer_id": "m", "layer_type": kind, "args": args}])
        for name, p in module.named_parameters():
            arrays[f"{case}/params/nn.m.{name}"] = p.detach().numpy()
        for i, x in enumerate(xs):
            arrays[f"{case}/input{i}"] = x.numpy()
        arrays[f"{case}/output"] = y.detach().numpy()
    for j, (fn, kwargs) in enumerate(FUNCTIONS):
        case = f"fn_{fn}_{j}"
        x = 2.0 * torch.randn(2, 3, 4)
        f = getattr(F, fn, None) or getattr(torch, fn)
        y = f(x, **kwargs)
        nets[case] = _net([(2, 3, 4)], fn, "call_function", kwargs)
        arrays[f"{case}/input0"] = x.numpy()
        arrays[f"{case}/output"] = y.numpy()
    out = Path(__file__).resolve().parents[1] / "tests" / "data"
    out.mkdir(parents=True, exist_ok=True)
    header = f"# generated by tools/torch_layer_refs.py with torch {torch.__version__}; do not edit\n"
    (out / "torch_refs.yaml").write_text(header + yaml.safe_dump(nets, sort_keys=False))
    np.savez_compressed(out / "torch_refs.npz", **arrays)
    print(f"{len(nets)} networks -> {out}")


if __name__ == "__main__":
    main()
