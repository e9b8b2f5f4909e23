//! The timing loop shared by the native micro-benchmarks (`cargo bench -p mcp-core`).

use std::time::{Duration, Instant};

/// Warms up, then times batches for ~0.5 s and prints the best batch's time per call and MB/s.
pub fn measure(label: &str, bytes: usize, mut f: impl FnMut()) {
    for _ in 0..50 {
        f();
    }
    let mut best = Duration::MAX;
    let deadline = Instant::now() + Duration::from_millis(500);
    let iters = (2_000_000 / bytes.max(1)).clamp(5, 10_000);
    while Instant::now() < deadline {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed() / iters as u32);
    }
    let mbs = bytes as f64 / best.as_secs_f64() / 1e6;
    println!(
        "{label:<52} {bytes:>7} B {:>9.2} µs {mbs:>8.0} MB/s",
        best.as_secs_f64() * 1e6
    );
}
