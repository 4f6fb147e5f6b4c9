"""Generate ``cli_golden.json``: reference samples from diffusers schedulers.

What it computes
----------------
Each case runs one diffusers scheduler through the standard sampling loop

    scheduler.set_timesteps(steps)
    sample = z * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(sample, t)
        out = model(inp, t)
        sample = scheduler.step(out, t, sample).prev_sample   # eta=0 for DDIM

where ``model`` is the *exact* denoiser of an isotropic Gaussian mixture
(GMM) data distribution under the linear DDPM schedule (1000 steps,
betas 1e-4 .. 0.02).  The model uses a float64 alpha_bar
(``np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))``), not the scheduler's
float32 one, evaluated at ``i = floor(t + 0.5)`` (t may be fractional).
For x_in at step i with ab = alpha_bar[i], component k has marginal
N(sqrt(ab) m_k, (ab s_k^2 + 1 - ab) I); the posterior mean is

    E[x0 | x_in] = sum_k r_k (m_k + sqrt(ab) s_k^2 / (ab s_k^2 + 1 - ab)
                                    * (x_in - sqrt(ab) m_k))

with responsibilities r_k computed in log space.  The model returns that
x0-hat ("sample" prediction) or eps = (x_in - sqrt(ab) x0hat) / sqrt(1 - ab)
("epsilon" prediction), computed in float64 and cast to float32.

The starting noise z is float32 standard normal, shape [6, 4], from
``np.random.default_rng(2024)``.  The JSON records the GMM, z, and for each
case the scheduler config, timesteps, sigmas, init_noise_sigma, number of
model calls and the final sample.  A case that raises or gives non-finite
output is recorded with an "error" field instead.

How to run
----------
    python3 -m venv "$VENV"          # any directory outside the repository
    "$VENV/bin/pip" install torch diffusers numpy
    "$VENV/bin/python" make_cli_golden.py

The JSON is written next to this script.
"""

import json
import math
import os

import numpy as np
import torch
import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02
SCHEDULE = dict(
    num_train_timesteps=NUM_TRAIN_TIMESTEPS,
    beta_start=BETA_START,
    beta_end=BETA_END,
    beta_schedule="linear",
)

# Float64 alpha_bar used by the model (independent of the scheduler's float32 one).
ALPHA_BAR64 = np.cumprod(1.0 - np.linspace(BETA_START, BETA_END, NUM_TRAIN_TIMESTEPS))

GMM = {
    "weights": [0.2, 0.5, 0.3],
    "means": [
        [-1.5, 0.5, 0.0, 1.0],
        [1.0, -0.5, 0.8, -1.2],
        [0.2, 1.4, -1.0, 0.3],
    ],
    "stds": [0.3, 0.5, 0.4],
}

N_SAMPLES, DIM = 6, 4
SEED = 2024


def gmm_posterior_mean(x, ab):
    """E[x0 | x_t = x] for the GMM when x_t = sqrt(ab) x0 + sqrt(1 - ab) eps (float64)."""
    w = np.asarray(GMM["weights"], dtype=np.float64)        # [K]
    m = np.asarray(GMM["means"], dtype=np.float64)          # [K, D]
    s2 = np.asarray(GMM["stds"], dtype=np.float64) ** 2     # [K]
    sa = math.sqrt(ab)
    var = ab * s2 + (1.0 - ab)                              # [K] marginal variance
    diff = x[:, None, :] - sa * m[None, :, :]               # [N, K, D]
    d = x.shape[1]
    logp = (
        np.log(w)[None, :]
        - 0.5 * d * np.log(2.0 * np.pi * var)[None, :]
        - 0.5 * np.sum(diff**2, axis=2) / var[None, :]
    )                                                       # [N, K]
    logp -= logp.max(axis=1, keepdims=True)
    r = np.exp(logp)
    r /= r.sum(axis=1, keepdims=True)
    comp_mean = m[None, :, :] + (sa * s2 / var)[None, :, None] * diff  # [N, K, D]
    return np.sum(r[:, :, None] * comp_mean, axis=1)


def make_model(prediction_type, counter):
    """Exact GMM denoiser with the scheduler-facing signature model(x_in, t)."""

    def model(x_in, t):
        counter[0] += 1
        t = float(t)
        i = min(max(int(math.floor(t + 0.5)), 0), NUM_TRAIN_TIMESTEPS - 1)
        ab = float(ALPHA_BAR64[i])
        x = x_in.detach().cpu().numpy().astype(np.float64)
        x0 = gmm_posterior_mean(x, ab)
        if prediction_type == "sample":
            out = x0
        elif prediction_type == "epsilon":
            out = (x - math.sqrt(ab) * x0) / math.sqrt(1.0 - ab)
        else:
            raise ValueError(prediction_type)
        return torch.from_numpy(out).to(x_in.dtype)

    return model


def floats(v):
    """Tensor / array / scalar -> plain Python float list (or float)."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    a = np.asarray(v, dtype=np.float64)
    return a.tolist()


# (name, scheduler class, config kwargs besides schedule and prediction_type, steps, prediction_type,
#  the `rediffuse sample` flags that should reproduce it)
CASES = [
    ("ddim-10", DDIMScheduler, {"clip_sample": False}, 10, "epsilon", "--sampler ddim --eta 0"),
    ("ddim-trailing-10", DDIMScheduler, {"clip_sample": False, "timestep_spacing": "trailing"}, 10, "epsilon",
     "--sampler ddim --eta 0 --timestep-spacing trailing"),
    ("ddim-linspace-10", DDIMScheduler, {"clip_sample": False, "timestep_spacing": "linspace"}, 10, "epsilon",
     "--sampler ddim --eta 0 --timestep-spacing linspace --ddim-stride-prev"),
    ("dpmpp-2m-10", DPMSolverMultistepScheduler, {}, 10, "epsilon", "--sampler dpmpp-2m"),
    ("dpmpp-2m-20", DPMSolverMultistepScheduler, {}, 20, "epsilon", "--sampler dpmpp-2m"),
    ("dpmpp-2m-leading-10", DPMSolverMultistepScheduler, {"timestep_spacing": "leading"}, 10, "epsilon",
     "--sampler dpmpp-2m --timestep-spacing leading"),
    ("dpmpp-2m-trailing-10", DPMSolverMultistepScheduler, {"timestep_spacing": "trailing"}, 10, "epsilon",
     "--sampler dpmpp-2m --timestep-spacing trailing"),
    ("dpmpp-3m-10", DPMSolverMultistepScheduler, {"solver_order": 3}, 10, "epsilon", "--sampler dpmpp-3m"),
    ("dpmpp-3m-20", DPMSolverMultistepScheduler, {"solver_order": 3}, 20, "epsilon", "--sampler dpmpp-3m"),
] + [
    (
        f"dpm-solver-{k}-{n}",
        DPMSolverSinglestepScheduler,
        # diffusers refuses final_sigmas_type="zero" for the noise-prediction form
        {"algorithm_type": "dpmsolver", "solver_order": k, "final_sigmas_type": "sigma_min"},
        n,
        "epsilon",
        f"--sampler dpm-solver --order {k} --final-sigma sigma-min",
    )
    for k, n in [(1, 10), (2, 10), (3, 10), (2, 11), (3, 11), (3, 12)]
] + [
    ("dpmpp-2s-10", DPMSolverSinglestepScheduler, {}, 10, "epsilon",
     "--sampler dpm-solver --algorithm dpmsolver++ --order 2"),
    ("dpmpp-3s-12", DPMSolverSinglestepScheduler, {"solver_order": 3}, 12, "epsilon",
     "--sampler dpm-solver --algorithm dpmsolver++ --order 3"),
    ("unipc-10", UniPCMultistepScheduler, {}, 10, "epsilon", "--sampler unipc"),
    ("unipc-3-10", UniPCMultistepScheduler, {"solver_order": 3}, 10, "epsilon", "--sampler unipc --order 3"),
    ("euler-10", EulerDiscreteScheduler, {}, 10, "epsilon", "--sampler euler"),
    ("heun-10", HeunDiscreteScheduler, {}, 10, "epsilon", "--sampler heun"),
    ("euler-karras-10", EulerDiscreteScheduler, {"use_karras_sigmas": True}, 10, "sample",
     "--sampler euler --sigmas karras"),
    ("heun-karras-10", HeunDiscreteScheduler, {"use_karras_sigmas": True}, 10, "sample",
     "--sampler heun --sigmas karras"),
    ("edm-heun-10", HeunDiscreteScheduler, {"use_karras_sigmas": True}, 10, "sample",
     "--sampler edm-heun"),
    ("dpmpp-2m-karras-10", DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, 10, "sample",
     "--sampler dpmpp-2m --sigmas karras"),
]


def run_case(cls, kwargs, steps, prediction_type, z):
    scheduler = cls(**SCHEDULE, **kwargs, prediction_type=prediction_type)
    scheduler.set_timesteps(steps)
    counter = [0]
    model = make_model(prediction_type, counter)
    step_kwargs = {"eta": 0.0} if cls is DDIMScheduler else {}

    timesteps = floats(scheduler.timesteps)
    sigmas = floats(scheduler.sigmas) if hasattr(scheduler, "sigmas") else None
    init_noise_sigma = float(scheduler.init_noise_sigma)

    sample = torch.from_numpy(z) * scheduler.init_noise_sigma
    sample = sample.to(torch.float32)
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(sample, t)
        out = model(inp, t)
        sample = scheduler.step(out, t, sample, **step_kwargs).prev_sample

    final = sample.to(torch.float32).numpy()
    result = {
        "timesteps": timesteps,
        "sigmas": sigmas,
        "init_noise_sigma": init_noise_sigma,
        "model_calls": counter[0],
        "final": final.astype(np.float64).tolist(),
    }
    if not np.all(np.isfinite(final)):
        result["error"] = "non-finite values in final sample"
    return result


def main():
    z = np.random.default_rng(SEED).standard_normal((N_SAMPLES, DIM), dtype=np.float32)
    cases = []
    for name, cls, kwargs, steps, prediction_type, cli in CASES:
        entry = {
            "name": name,
            "cli": cli.split() + ["--steps", str(steps)],
            "scheduler": cls.__name__,
            "config": dict(kwargs, prediction_type=prediction_type),
            "steps": steps,
            "prediction_type": prediction_type,
        }
        try:
            entry.update(run_case(cls, kwargs, steps, prediction_type, z))
        except Exception as e:  # record and carry on with the other cases
            entry["error"] = f"{type(e).__name__}: {e}"
        status = entry.get("error", "ok")
        print(f"{name:20s} {status}")
        cases.append(entry)

    doc = {
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
        "schedule": (
            f"linear betas, num_train_timesteps={NUM_TRAIN_TIMESTEPS}, "
            f"beta_start={BETA_START}, beta_end={BETA_END} "
            "(diffusers beta_schedule='linear')"
        ),
        "model": (
            "exact posterior mean of an isotropic Gaussian mixture (gmm); "
            "alpha_bar = float64 cumprod(1 - linspace(1e-4, 0.02, 1000)) at "
            "i = floor(t + 0.5); x_t = sqrt(ab) x0 + sqrt(1-ab) eps; "
            "'sample' returns E[x0|x_t], 'epsilon' returns "
            "(x_t - sqrt(ab) E[x0|x_t]) / sqrt(1-ab); computed in float64, "
            "returned as float32; latents start at z * init_noise_sigma"
        ),
        "gmm": GMM,
        "z": z.astype(np.float64).tolist(),
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli_golden.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
