//! The "test the tester" matrix in simulation: every row of `matrix::ROWS` that the
//! simulator can run, swept over seeds 1..N on every core; prints each row's rate of
//! seeds holding its expectation and the anomaly kinds seen (how many seeds showed each).
//!
//! `cargo run --release --example sim_matrix -- [SEEDS] [ROW-ID-PARTS,…] [TIME-LIMIT]`

use schism_runner::matrix::ROWS;
use schism_runner::sim::SeedRange;
use schism_runner::sim::sweep::matrix_row;

fn main() {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let filter = args.next().unwrap_or_default();
    let time_limit = args.next();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for row in ROWS {
        if !filter.is_empty() && !filter.split(',').any(|p| row.id.contains(p)) {
            continue;
        }
        let t = std::time::Instant::now();
        match matrix_row(
            row,
            time_limit.as_deref(),
            SeedRange {
                first: 1,
                last: seeds,
            },
            threads,
        ) {
            Ok(r) => println!(
                "{:<20} {:>4}/{:<4} {:>5.1}%  expect {:<48} errors {}  kinds {:?}  ({:.0} s)",
                r.id,
                r.held,
                r.runs,
                100.0 * r.held as f64 / r.runs.max(1) as f64,
                format!("{:?}", row.expect),
                r.errors,
                r.kinds,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => println!("{:<20} not simulated: {e}", row.id),
        }
    }
}
