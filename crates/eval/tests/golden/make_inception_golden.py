"""Golden values for rediffuse's InceptionV3Fid: pytorch-fid's InceptionV3 on RANDOM weights.

Run with the project venv (needs torch, torchvision, pytorch-fid, numpy, safetensors):

    python3 crates/eval/tests/golden/make_inception_golden.py

The weights follow a deterministic formula (documented in the JSON and in
crates/eval/src/features/inception/synthetic.rs) so the Rust test can regenerate them
bit-identically; no weights are written to the repository. Writes
crates/eval/tests/golden/inception_golden.json next to this script.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

import pytorch_fid
import pytorch_fid.inception as pfi

WEIGHTS_FORMULA = (
    "u_i = 2*((splitmix64(fnv1a64(name) + i) >> 11) * 2^-53) - 1 for flat index i of tensor `name` "
    "(wrapping u64; fnv1a64 offset 0xcbf29ce484222325, prime 0x100000001b3 over the UTF-8 name; "
    "splitmix64: z = x + 0x9e3779b97f4a7c15; z = (z ^ z>>30) * 0xbf58476d1ce4e5b9; "
    "z = (z ^ z>>27) * 0x94d049bb133111eb; z ^ z>>31). "
    "conv.weight = u*sqrt(6/fan_in); bn.weight = 1+0.1u; bn.bias = 0.1u; bn.running_mean = 0.1u; "
    "bn.running_var = 1+0.25(u+1); fc.weight = u*sqrt(3/2048); fc.bias = 0.1u; f64 then rounded to f32."
)

IMAGES_FORMULA = {
    "rgb": "shape [2,3,32,32]: x[n,c,h,w] = sin(0.3h + 0.7w(c+1) + 1.1n) * cos(0.2(h-w) + c)",
    "grey": "shape [1,1,28,20]: x[n,0,h,w] = sin(0.5h + 0.9n) * cos(0.37w + 0.2hw/28)",
}

MASK64 = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(name: str, count: int) -> np.ndarray:
    seed = np.uint64(fnv1a64(name.encode()))
    with np.errstate(over="ignore"):
        idx = seed + np.arange(count, dtype=np.uint64)
    bits = splitmix64(idx) >> np.uint64(11)
    return 2.0 * (bits.astype(np.float64) * 2.0**-53) - 1.0


def synthetic_value(name: str, shape) -> torch.Tensor:
    count = int(np.prod(shape))
    u = uniform(name, count)
    if name.endswith("conv.weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        v = u * math.sqrt(6.0 / fan_in)
    elif name.endswith("bn.weight"):
        v = 1.0 + 0.1 * u
    elif name.endswith("bn.bias") or name.endswith("bn.running_mean") or name == "fc.bias":
        v = 0.1 * u
    elif name.endswith("bn.running_var"):
        v = 1.0 + 0.25 * (u + 1.0)
    elif name == "fc.weight":
        v = u * math.sqrt(3.0 / shape[1])
    else:
        raise ValueError(f"unexpected parameter {name}")
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def synthetic_state_dict():
    # Same module structure pytorch-fid's fid_inception_v3() builds (FID blocks keep the
    # parameter names and shapes of torchvision's blocks).
    skeleton = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    sd = {}
    for name, t in skeleton.state_dict().items():
        if name.endswith("num_batches_tracked"):
            sd[name] = t.clone()
        else:
            sd[name] = synthetic_value(name, tuple(t.shape))
    return sd


def images(kind: str) -> np.ndarray:
    if kind == "rgb":
        n, c, h, w = np.meshgrid(np.arange(2), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
        x = np.sin(0.3 * h + 0.7 * w * (c + 1) + 1.1 * n) * np.cos(0.2 * (h - w) + c)
    else:
        n, c, h, w = np.meshgrid(np.arange(1), np.arange(1), np.arange(28), np.arange(20), indexing="ij")
        x = np.sin(0.5 * h + 0.9 * n) * np.cos(0.37 * w + 0.2 * h * w / 28.0)
    return x.astype(np.float32)


def summary(t: torch.Tensor, head: int = 16, stride: int = 0):
    flat = t.reshape(t.shape[0], -1).double()
    out = {
        "head": flat[:, :head].tolist(),
        "sum": flat.sum(1).tolist(),
        "norm": flat.norm(dim=1).tolist(),
    }
    if stride:
        out["strided"] = flat[:, ::stride].tolist()
        out["stride"] = stride
    return out


def check_conversion_command(sd, tmp):
    """The documented .pth -> safetensors conversion must round-trip a state dict."""
    pth = os.path.join(tmp, "pt_inception-2015-12-05-6726825d.pth")
    torch.save(sd, pth)
    cmd = (
        "import torch, safetensors.torch as st; sd = torch.load('pt_inception-2015-12-05-6726825d.pth', "
        "map_location='cpu'); st.save_file({k: v.contiguous() for k, v in sd.items()}, 'inception.safetensors')"
    )
    subprocess.run([sys.executable, "-c", cmd], cwd=tmp, check=True)
    import safetensors.torch as st

    back = st.load_file(os.path.join(tmp, "inception.safetensors"))
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    return cmd


def main():
    torch.set_num_threads(2)
    sd = synthetic_state_dict()
    pfi.load_state_dict_from_url = lambda *args, **kwargs: sd  # no download: use the synthetic weights
    model = pfi.InceptionV3(output_blocks=[0, 1, 2, 3], resize_input=True, normalize_input=True)
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        conversion = check_conversion_command(sd, tmp)

    cases = {}
    for kind in ["rgb", "grey"]:
        x = torch.from_numpy(images(kind))
        x3 = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
        with torch.no_grad():
            b0, b1, b2, b3 = model((x3 + 1.0) / 2.0)  # pytorch-fid takes (0, 1) images
            pool3 = b3[:, :, 0, 0]
            logits = F.linear(pool3, sd["fc.weight"], sd["fc.bias"])
        cases[kind] = {
            "shape": list(x.shape),
            "block0": summary(b0, head=8),
            "block1": summary(b1, head=8),
            "block2": summary(b2, head=8),
            "pool3": summary(pool3, head=32, stride=64),
            "logits": summary(logits, head=16, stride=63),
        }
        print(kind, "pool3 norm", cases[kind]["pool3"]["norm"], "logits norm", cases[kind]["logits"]["norm"])

    import torchvision

    out = {
        "description": "pytorch-fid InceptionV3(output_blocks=[0,1,2,3]) on synthetic weights; "
        "inputs given to pytorch-fid as (x+1)/2, logits = F.linear(pool3, fc.weight, fc.bias)",
        "pytorch_fid_version": pytorch_fid.__version__,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "numpy_version": np.__version__,
        "weights_formula": WEIGHTS_FORMULA,
        "images_formula": IMAGES_FORMULA,
        "conversion_command_checked": conversion,
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inception_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
