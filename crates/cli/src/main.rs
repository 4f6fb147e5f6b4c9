//! The `rediffuse` command-line tool. Library errors are typed; here they are
//! turned into messages and exit codes (0 ok, 1 failure, 2 usage).

mod args;
mod cmd;
mod io;
mod progress;

use clap::Parser;

fn main() {
    // candle re-counts cores on every matmul unless this is set (≈30 % of a small training step).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    // the fast kernels run on rayon's pool; candle's spin-waiting pool is reduced to one thread
    rediffuse_nn::ops::init_threads(None);
    // a write past the file-size limit (`ulimit -f`) then fails with EFBIG, reported as an
    // error, instead of killing the process halfway through a file
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Train(a) => cmd::train::run(a),
        args::Command::Sample(a) => cmd::sample::run(a),
        args::Command::Eval(a) => cmd::eval::run(a),
        args::Command::TrainClassifier(a) => cmd::classifier::run(a),
        args::Command::TrainAutoencoder(a) => cmd::autoencoder::run(a),
        args::Command::Data { command } => cmd::data::run(command),
        args::Command::Demo(a) => cmd::demo::run(a),
        args::Command::Interpolate(a) => cmd::interpolate::run(a),
        args::Command::Inpaint(a) => cmd::inpaint::run(a),
        args::Command::Reflow(a) => cmd::reflow::run(a),
        args::Command::Distill(a) => cmd::distill::run(a),
        args::Command::ElsCalibrate(a) => cmd::els::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
