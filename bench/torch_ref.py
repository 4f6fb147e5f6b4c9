"""PyTorch reference for the rediffuse speed benchmark.

Builds the same networks as rediffuse's `rediffuse_nn::unet::Unet` (symmetric skip
layout) from the configuration the Rust bench reports, and defines the timed cases
with exactly the work the Rust side times (see bench/rust/src/cases.rs).
"""

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 64


def sinusoidal(t, dim, flip_sin_to_cos, freq_shift):
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(-math.log(10000.0) * k / (half - freq_shift))
    args = t[:, None].float() * freqs[None, :]
    sin, cos = torch.sin(args), torch.cos(args)
    return torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class Attn(nn.Module):
    """x + to_out(softmax(q kᵀ/√d) v) on GroupNorm(x), written out as rediffuse does."""

    def __init__(self, c, heads, groups, eps):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps)
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(c, c) for _ in range(4))
        self.heads = heads

    def forward(self, x):
        b, c, h, w = x.shape
        n, heads = h * w, self.heads
        d = c // heads
        tok = self.group_norm(x).reshape(b, c, n).transpose(1, 2)

        def split(t):
            return t.reshape(b, n, heads, d).transpose(1, 2)

        q, k, v = split(self.to_q(tok)), split(self.to_k(tok)), split(self.to_v(tok))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        out = self.to_out(out).transpose(1, 2).reshape(b, c, h, w)
        return x + out


class Unet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg["skip_layout"] != "symmetric" or cfg["num_classes"] is not None:
            raise ValueError("the reference implements the symmetric, unconditional U-Net only")
        self.cfg = cfg
        g, eps, temb = cfg["groups"], cfg["norm_eps"], cfg["temb_dim"]
        base, mults, nrb = cfg["base_channels"], cfg["channel_mults"], cfg["num_res_blocks"]
        levels = len(mults)

        def has_attn(i):
            return (cfg["image_size"] >> i) in cfg["attention_resolutions"]

        self.linear_1 = nn.Linear(cfg["time_embed_dim"], temb)
        self.linear_2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(cfg["in_channels"], base, 3, padding=1)
        ch, skips = base, []
        self.down = nn.ModuleList()
        for i in range(levels):
            out = base * mults[i]
            lvl = nn.Module()
            lvl.resnets, lvl.attentions = nn.ModuleList(), nn.ModuleList()
            for _ in range(nrb):
                lvl.resnets.append(ResBlock(ch, out, temb, g, eps))
                ch = out
                if has_attn(i):
                    lvl.attentions.append(Attn(ch, cfg["num_heads"], g, eps))
                skips.append(ch)
            lvl.downsample = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i + 1 < levels else None
            self.down.append(lvl)
        self.mid0 = ResBlock(ch, ch, temb, g, eps)
        self.mid_attn = Attn(ch, cfg["num_heads"], g, eps) if cfg["mid_attention"] else None
        self.mid1 = ResBlock(ch, ch, temb, g, eps)
        self.up = nn.ModuleList()
        for k in range(levels):
            i = levels - 1 - k
            out = base * mults[i]
            lvl = nn.Module()
            lvl.resnets, lvl.attentions = nn.ModuleList(), nn.ModuleList()
            for _ in range(nrb):
                lvl.resnets.append(ResBlock(ch + skips.pop(), out, temb, g, eps))
                ch = out
                if has_attn(i):
                    lvl.attentions.append(Attn(ch, cfg["num_heads"], g, eps))
            lvl.upsample = nn.Conv2d(ch, ch, 3, padding=1) if i > 0 else None
            self.up.append(lvl)
        self.conv_norm_out = nn.GroupNorm(g, ch, eps)
        out_ch = cfg["out_channels"] * (2 if cfg["learn_sigma"] else 1)
        self.conv_out = nn.Conv2d(ch, out_ch, 3, padding=1)

    def forward(self, x, t):
        cfg = self.cfg
        emb = sinusoidal(t, cfg["time_embed_dim"], cfg["flip_sin_to_cos"], cfg["freq_shift"])
        temb_act = F.silu(self.linear_2(F.silu(self.linear_1(emb))))
        h = self.conv_in(x)
        skips = []
        for lvl in self.down:
            for j, rb in enumerate(lvl.resnets):
                h = rb(h, temb_act)
                if len(lvl.attentions) > j:
                    h = lvl.attentions[j](h)
                skips.append(h)
            if lvl.downsample is not None:
                h = lvl.downsample(h)
        h = self.mid0(h, temb_act)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid1(h, temb_act)
        for lvl in self.up:
            for j, rb in enumerate(lvl.resnets):
                h = rb(torch.cat([h, skips.pop()], dim=1), temb_act)
                if len(lvl.attentions) > j:
                    h = lvl.attentions[j](h)
            if lvl.upsample is not None:
                h = lvl.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def _uniform(*shape, requires_grad=False):
    return (torch.rand(*shape) * 2 - 1).requires_grad_(requires_grad)


LAYER = (BATCH, 64, 28, 28)


class Case:
    """One timed case; `run()` performs one repetition and returns milliseconds."""

    def __init__(self, name, describe=None):
        torch.manual_seed(0)
        self.name = name
        self.model = None
        if name.startswith("conv3x3") or name.startswith("groupnorm"):
            self.x = _uniform(*LAYER, requires_grad=True)
            self.r = _uniform(*LAYER)
            if name.startswith("conv3x3"):
                self.w = (_uniform(64, 64, 3, 3) / 24).requires_grad_()
                self.b = _uniform(64, requires_grad=True)
                self.f = lambda x: F.conv2d(x, self.w, self.b, padding=1)
            else:
                self.g = (_uniform(64) * 0.5 + 1).requires_grad_()
                self.b = _uniform(64, requires_grad=True)
                self.f = lambda x: F.group_norm(x, 8, self.g, self.b, 1e-5)
            self.grad = name.endswith("bwd")
        else:
            cfg = describe["config"]
            self.model = Unet(cfg)
            got = param_count(self.model)
            if got != describe["params"]:
                raise SystemExit(f"{name}: PyTorch model has {got} parameters, rediffuse {describe['params']}")
            s, c = cfg["image_size"], cfg["in_channels"]
            out_c = cfg["out_channels"] * (2 if cfg["learn_sigma"] else 1)
            self.x = _uniform(BATCH, c, s, s)
            self.noise = _uniform(BATCH, out_c, s, s)
            self.t = torch.randint(0, 1000, (BATCH,)).float()
            self.train = name.endswith("train_step")
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.01)

    def run(self):
        if self.model is None:
            if not self.grad:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    y = self.f(self.x)
                    return (time.perf_counter() - t0) * 1e3
            self.x.grad = None
            for p in (self.w if hasattr(self, "w") else self.g, self.b):
                p.grad = None
            loss = (self.f(self.x) * self.r).sum()
            t0 = time.perf_counter()
            loss.backward()
            return (time.perf_counter() - t0) * 1e3
        if not self.train:
            self.model.eval()
            with torch.no_grad():
                t0 = time.perf_counter()
                y = self.model(self.x, self.t)
                return (time.perf_counter() - t0) * 1e3
        self.model.train()
        t0 = time.perf_counter()
        pred = self.model(self.x, self.t)
        loss = F.mse_loss(pred, self.noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return (time.perf_counter() - t0) * 1e3
