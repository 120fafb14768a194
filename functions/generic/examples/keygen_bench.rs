//! Times each key-pair generator: `cargo run --release -p generic-rotation
//! --example keygen_bench [RUNS]` prints the median and the range per kind
//! and format, in milliseconds. A benchmark, not a test: nothing is asserted.

use std::time::Instant;

use generic_rotation::keypair::{KeyAlgorithm, KeyFormat, KeyPairSpec};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    println!("| key | format | median (ms) | min–max (ms) | runs |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for algorithm in [
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Rsa(2048),
        KeyAlgorithm::Rsa(3072),
        KeyAlgorithm::Rsa(4096),
    ] {
        for format in [KeyFormat::Pem, KeyFormat::OpenSsh] {
            let spec = KeyPairSpec {
                algorithm,
                format,
                public_field: None,
            };
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let started = Instant::now();
                    let pair = spec.generate().expect("a key pair");
                    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                    drop(pair);
                    elapsed
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let name = match algorithm {
                KeyAlgorithm::Rsa(bits) => format!("rsa {bits}"),
                other => other.name().to_owned(),
            };
            println!(
                "| {name} | {} | {:.2} | {:.2}–{:.2} | {runs} |",
                format.name(),
                times[times.len() / 2],
                times[0],
                times[times.len() - 1]
            );
        }
    }
}
