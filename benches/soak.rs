//! The fault soak, long: `cargo bench --bench soak -- [--days 7] [--speedup 1440] [--seed N]`.
//!
//! The exporter and the simulator share one clock running `--speedup` times faster than the
//! wall clock (1440: a simulated day a minute), with faults injected at random (see
//! `testkit/src/soak/`, which the CI test runs for one day). Prints the figures:
//! password attempts against the limits, re-logins per session error, readings Share served
//! that never reached `/metrics` outside injected disturbances, memory, panics, ERROR lines.

use dexcom_testkit::soak;

fn main() {
    let mut options = soak::SoakOptions {
        days: 7.0,
        speedup: 1440.0,
        seed: 2026,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--days" => options.days = value().parse().unwrap_or(options.days),
            "--speedup" => options.speedup = value().parse().unwrap_or(options.speedup),
            "--seed" => options.seed = value().parse().unwrap_or(options.seed),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    println!(
        "fault soak: {} simulated days at {}x, seed {}",
        options.days, options.speedup, options.seed
    );
    let report = soak::run(options);
    println!("{report}");
    for line in &report.unexpected_error_lines {
        println!("  unexpected: {line}");
    }
}
