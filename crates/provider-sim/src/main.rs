//! `provider-sim [--addr HOST:PORT] [--seed N]`: serves the simulated provider APIs until stopped.
//! `SIM_ADDR` and `SIM_SEED` work too. Control endpoints live under `/_sim/` (see docs/SIMULATOR.md).

use std::net::TcpListener;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let addr = arg("--addr")
        .or_else(|| std::env::var("SIM_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:12111".into());
    let seed: u64 = arg("--seed")
        .or_else(|| std::env::var("SIM_SEED").ok())
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(42);
    let listener = TcpListener::bind(&addr)?;
    let port = listener.local_addr()?.port();
    println!("provider-sim listening on http://127.0.0.1:{port} (seed {seed})");
    provider_sim::serve(listener, seed)?.await?;
    Ok(())
}
