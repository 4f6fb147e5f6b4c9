"""Golden outputs of small random diffusers models, for rediffuse's loader parity tests.

Builds tiny `UNet2DModel` (plain and class-conditional), `DiTTransformer2DModel` and
`AutoencoderKL` models in float32, perturbs every parameter (so zero-initialised layers are not
zero), saves each with `save_pretrained` into `crates/nn/tests/fixtures/diffusers/<name>/` and
writes `golden.safetensors` beside it: the inputs and diffusers' outputs.
`crates/nn/tests/diffusers_parity.rs` loads the folders and checks max |Δ| <= 1e-4.

Run from the repository root (diffusers and torch from PyPI; not part of the Rust build):

    python3 -m venv /tmp/gvenv && /tmp/gvenv/bin/pip install torch diffusers safetensors numpy
    /tmp/gvenv/bin/python bench/diffusers_golden.py

The committed fixtures were made with torch 2.15.0 and diffusers 0.42.1.
Class labels and timesteps are stored as float32 and passed to diffusers as int64 / float32.
"""

import os
import shutil

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel, UNet2DModel
from safetensors.torch import save_file

ROOT = os.path.join("crates", "nn", "tests", "fixtures", "diffusers")


def perturb(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def save(name, model, tensors):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, os.path.join(out, "golden.safetensors"))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name}: {size / 1024:.0f} KiB, {sum(p.numel() for p in model.parameters())} parameters")


def unet2d():
    torch.manual_seed(1)
    m = perturb(UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(4, 8), layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=2, attention_head_dim=4))  # two heads at 8 channels
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([3.0, 517.0])
    with torch.no_grad():
        y = m(x, t).sample
    save("unet2d", m, {"sample": x, "timestep": t, "output": y})


def unet2d_cond():
    """Class embedding, [sin, cos] order with freq_shift 1, three levels, two ResBlocks each,
    no middle attention, no attention_head_dim (one head per block)."""
    torch.manual_seed(2)
    m = perturb(UNet2DModel(
        sample_size=8, in_channels=2, out_channels=2, block_out_channels=(4, 8, 8), layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=2,
        attention_head_dim=None, num_class_embeds=3, flip_sin_to_cos=False, freq_shift=1, add_attention=False))
    x = torch.randn(2, 2, 8, 8)
    t = torch.tensor([10.0, 999.0])
    y_lab = torch.tensor([0.0, 2.0])
    with torch.no_grad():
        y = m(x, t, class_labels=y_lab.long()).sample
    save("unet2d_cond", m, {"sample": x, "timestep": t, "class_labels": y_lab, "output": y})


def dit():
    torch.manual_seed(3)
    m = perturb(DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=2, out_channels=4, num_layers=2,
        sample_size=8, patch_size=2, num_embeds_ada_norm=5))
    x = torch.randn(2, 2, 8, 8)
    t = torch.tensor([3.0, 517.0])
    y_lab = torch.tensor([1.0, 5.0])  # 5 = the null label (row num_embeds_ada_norm)
    with torch.no_grad():
        y = m(x, timestep=t, class_labels=y_lab.long()).sample
    save("dit", m, {"sample": x, "timestep": t, "class_labels": y_lab, "output": y})


def autoencoder_kl():
    torch.manual_seed(4)
    m = perturb(AutoencoderKL(
        in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(4, 8),
        layers_per_block=1, latent_channels=2, norm_num_groups=2, sample_size=8))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        dist = m.encode(x).latent_dist
        z = torch.randn_like(dist.mean)
        out = {"sample": x, "latent_mean": dist.mean, "latent_logvar": dist.logvar,
               "decoded": m.decode(dist.mean).sample, "z": z, "decoded_z": m.decode(z).sample}
    save("autoencoderkl", m, out)


if __name__ == "__main__":
    import diffusers
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}")
    unet2d()
    unet2d_cond()
    dit()
    autoencoder_kl()
