"""Golden trajectories of diffusers' DPMSolverMultistepScheduler (default settings),
DDIMScheduler (clip_sample=False, otherwise default) and UniPCMultistepScheduler (default
settings; and order 3 with B(h) = h) for a fixed closed-form epsilon "model".

Run:  python3 crates/sample/tests/golden/make_golden.py
Writes crates/sample/tests/golden/diffusers_golden.json, read by
crates/sample/tests/continuous_golden.rs.

Model (both sides compute it): eps(x, t) = sqrt(t / 1000) * (0.9 x + 0.1 tanh(2 x)),
with t the integer DDPM timestep index the scheduler passes.
"""

import json
import os

import diffusers
import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

STEPS = 20
DIM = 8


def model(x, t):
    return (float(t) / 1000.0) ** 0.5 * (0.9 * x + 0.1 * torch.tanh(2.0 * x))


def run(scheduler, x_t):
    scheduler.set_timesteps(STEPS)
    sample = x_t.clone()
    traj = []
    for t in scheduler.timesteps:
        eps = model(sample, int(t))
        sample = scheduler.step(eps, t, sample).prev_sample
        traj.append(sample.double().numpy().tolist())
    return [int(t) for t in scheduler.timesteps], traj


def main():
    rng = np.random.default_rng(1234)
    x_t = torch.tensor(rng.standard_normal((2, DIM)), dtype=torch.float32)
    common = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")
    dpm = DPMSolverMultistepScheduler(**common)
    ddim = DDIMScheduler(clip_sample=False, **common)
    dpm_ts, dpm_traj = run(dpm, x_t)
    ddim_ts, ddim_traj = run(ddim, x_t)
    unipc_ts, unipc_traj = run(UniPCMultistepScheduler(**common), x_t)
    unipc3_ts, unipc3_traj = run(UniPCMultistepScheduler(solver_order=3, solver_type="bh1", **common), x_t)
    # with B(h) = h the last step to sigma = 0 multiplies h = -inf by a zero sum in diffusers (NaN);
    # keep the 19 finite states
    assert all(np.isfinite(np.array(s)).all() for s in unipc3_traj[:-1])
    unipc3_traj = unipc3_traj[:-1]
    out = {
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
        "model": "eps(x, t) = sqrt(t / 1000) * (0.9 x + 0.1 tanh(2 x))",
        "schedule": "linear, beta 1e-4..0.02, 1000 steps (float32 as in diffusers)",
        "alphas_cumprod": dpm.alphas_cumprod.double().numpy().tolist(),
        "x_T": x_t.double().numpy().tolist(),
        "dpmpp_2m": {"settings": "DPMSolverMultistepScheduler defaults (solver_order=2, dpmsolver++, midpoint, "
                                 "timestep_spacing=linspace, final_sigmas_type=zero)",
                     "timesteps": dpm_ts, "trajectory": dpm_traj},
        "ddim": {"settings": "DDIMScheduler defaults except clip_sample=False (eta=0, leading spacing, "
                             "set_alpha_to_one=True)",
                 "timesteps": ddim_ts, "trajectory": ddim_traj},
        "unipc_bh2": {"settings": "UniPCMultistepScheduler defaults (solver_order=2, bh2, predict_x0, "
                                  "corrector on, lower_order_final, linspace, final_sigmas_type=zero)",
                      "timesteps": unipc_ts, "trajectory": unipc_traj},
        "unipc_bh1_order3": {"settings": "UniPCMultistepScheduler(solver_order=3, solver_type='bh1'), "
                                         "otherwise defaults; the last state (NaN in diffusers: B(h) = h = -inf "
                                         "at sigma = 0) is left out",
                             "timesteps": unipc3_ts, "trajectory": unipc3_traj},
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusers_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path, "diffusers", diffusers.__version__)


if __name__ == "__main__":
    main()
