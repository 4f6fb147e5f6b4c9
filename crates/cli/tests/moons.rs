//! An MLP trained with `rediffuse train` on moons: its samples' sliced-Wasserstein
//! distance to held-out data is within 3× the distance between two independent
//! held-out draws of the same size.

mod common;
use common::*;

#[test]
fn mlp_on_moons_matches_held_out_data() {
    let d = tmp("moons");
    ok(
        &d,
        &[
            "train",
            "--data",
            "moons",
            "--model",
            "mlp",
            "--steps",
            "6000",
            "--batch-size",
            "256",
            "--lr",
            "2e-3",
            "--warmup-steps",
            "200",
            "--seed",
            "0",
            "--out",
            "run",
            "--quiet",
        ],
    );
    assert!(d.join("run/loss.png").exists() && d.join("run/metrics.jsonl").exists());
    ok(
        &d,
        &[
            "sample",
            "--run",
            "run",
            "--sampler",
            "ddim",
            "--steps",
            "50",
            "--n",
            "2000",
            "--seed",
            "1",
            "--out",
            "x0.npy",
            "--png",
            "x0.png",
            "--quiet",
        ],
    );
    // two independent held-out draws of the same size (seeds unused by training)
    ok(&d, &["data", "export", "moons", "--n", "2000", "--seed", "500", "--out", "a.npy"]);
    ok(
        &d,
        &[
            "eval",
            "--samples",
            "x0.npy",
            "--data",
            "moons",
            "--n",
            "2000",
            "--seed",
            "501",
            "--metric",
            "swd",
            "--json",
            "model.json",
        ],
    );
    ok(
        &d,
        &[
            "eval",
            "--samples",
            "a.npy",
            "--data",
            "moons",
            "--n",
            "2000",
            "--seed",
            "501",
            "--metric",
            "swd",
            "--json",
            "ref.json",
        ],
    );
    let model = json_value(&d.join("model.json"));
    let reference = json_value(&d.join("ref.json"));
    eprintln!("SW2² model vs held-out: {model:.5}; held-out vs held-out: {reference:.5}");
    assert!(model <= 3.0 * reference, "model {model} vs reference {reference}");
    // and DDPM (1000 steps) on the same run
    ok(
        &d,
        &[
            "sample",
            "--run",
            "run",
            "--sampler",
            "ddpm",
            "--n",
            "2000",
            "--seed",
            "2",
            "--out",
            "x1.npy",
            "--quiet",
        ],
    );
    ok(
        &d,
        &[
            "eval",
            "--samples",
            "x1.npy",
            "--data",
            "moons",
            "--n",
            "2000",
            "--seed",
            "501",
            "--metric",
            "swd",
            "--json",
            "ddpm.json",
        ],
    );
    let ddpm = json_value(&d.join("ddpm.json"));
    eprintln!("SW2² DDPM-1000 vs held-out: {ddpm:.5}");
    assert!(ddpm <= 3.0 * reference, "ddpm {ddpm} vs reference {reference}");
    // the σ-space samplers with their (diffusers) defaults on the same DDPM run
    for (i, flags) in [
        &["--sampler", "dpmpp-2m"][..],
        &["--sampler", "dpmpp-3m"],
        &["--sampler", "dpm-solver", "--order", "3"],
        &["--sampler", "dpm-solver", "--algorithm", "dpmsolver++"],
        &["--sampler", "unipc"],
        &["--sampler", "euler"],
        &["--sampler", "heun"],
        &["--sampler", "edm-heun"],
        &["--sampler", "dpmpp-2m", "--sigmas", "karras"],
        &["--sampler", "dpmpp-2m", "--timestep-spacing", "trailing"],
    ]
    .iter()
    .enumerate()
    {
        let (out, json) = (format!("s{i}.npy"), format!("s{i}.json"));
        let mut args = vec!["sample", "--run", "run", "--n", "2000", "--seed", "3", "--out", &out, "--quiet"];
        args.extend_from_slice(flags);
        ok(&d, &args);
        ok(
            &d,
            &[
                "eval",
                "--samples",
                &out,
                "--data",
                "moons",
                "--n",
                "2000",
                "--seed",
                "501",
                "--metric",
                "swd",
                "--json",
                &json,
            ],
        );
        let v = json_value(&d.join(&json));
        eprintln!("SW2² {} vs held-out: {v:.5}", flags.join(" "));
        assert!(v <= 3.0 * reference, "{flags:?}: {v} vs reference {reference}");
    }
}
