"""Golden outputs of small random diffusers models, for rediffuse's loader parity tests.

Builds tiny `UNet2DModel` (plain and class-conditional), `DiTTransformer2DModel` and
`AutoencoderKL` models in float32, perturbs every parameter by 0.05 * N(0, 1) (so zero-initialised
layers are not zero), saves each with `save_pretrained` into
`crates/nn/tests/fixtures/diffusers/<name>/` (`config.json`, `diffusion_pytorch_model.safetensors`)
and writes `golden.safetensors` beside it: the inputs and diffusers' eval-mode outputs.
`crates/nn/tests/diffusers_parity.rs` loads the folders and checks max |Δ| <= 1e-4.

Run from the repository root (diffusers and torch from PyPI; not part of the Rust build):

    python3 -m venv /tmp/gvenv && /tmp/gvenv/bin/pip install torch diffusers safetensors numpy
    /tmp/gvenv/bin/python bench/diffusers_golden.py [--keys]

`--keys` also prints every state-dict key with its shape. Reruns are byte-identical.
The committed fixtures were made with torch 2.15.0 (CPU) and diffusers 0.42.1.

What the four fixtures cover:
- unet2d: DownBlock2D + AttnDownBlock2D / AttnUpBlock2D + UpBlock2D, mid block with attention,
  attention_head_dim 4 (two heads at 8 channels), flip_sin_to_cos=True, freq_shift=0, a final
  down block without downsampler, ResnetBlock2D with and without conv_shortcut.
- unet2d_cond: num_class_embeds=3 (nn.Embedding added to the time embedding),
  flip_sin_to_cos=False ([sin, cos] order), freq_shift=1, three levels with two ResBlocks each,
  an AttnDownBlock2D that downsamples, add_attention=False (no mid attention),
  attention_head_dim=None (one head per block).
- dit: DiTTransformer2DModel, 2 layers, 2 heads of 8, patch 2, learned-sigma style
  out_channels = 2 * in_channels, num_embeds_ada_norm=5; label 5 is the classifier-free null row
  (the table has num_embeds_ada_norm + 1 rows). `norm_num_groups` is accepted but unused by DiT.
- autoencoderkl: two DownEncoderBlock2D / UpDecoderBlock2D levels, latent_channels=2,
  mid attention, quant_conv / post_quant_conv; golden mean, clamped logvar, decode(mean), decode(z).
Widths stay at 4 and 8 channels with 2 groups so that the whole fixtures folder stays small
(about 340 KiB in all).

Class labels and timesteps are stored as float32. Labels are passed to diffusers as int64;
timesteps as float32 (both models accept fractional timesteps: the sinusoidal embedding calls
`.float()` on them).
"""

import os
import shutil
import sys

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel, UNet2DModel
from safetensors.torch import save_file

ROOT = os.path.join("crates", "nn", "tests", "fixtures", "diffusers")
PRINT_KEYS = "--keys" in sys.argv[1:]


def perturb(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def save(name, model, tensors):
    if PRINT_KEYS:
        for k, v in model.state_dict().items():
            print(f"  {k} {list(v.shape)}")
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
    # a 10-step DDIM run of the whole pipeline from fixed noise (for `rediffuse sample --run`)
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    sched.set_timesteps(10)
    z = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        y = m(x, t).sample
        xt = z
        for step in sched.timesteps:
            xt = sched.step(m(xt, step).sample, step, xt).prev_sample
    save("unet2d", m, {"sample": x, "timestep": t, "output": y, "ddim_noise": z, "ddim_10": xt})
    sched.save_config(os.path.join(ROOT, "unet2d"))


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
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"total: {total / 1024:.0f} KiB")
