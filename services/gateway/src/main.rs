//! `gateway` serves the API; `gateway migrate` creates the database if missing and migrates it.

use anyhow::Context;
use biz_core::settings::Settings;
use biz_core::{db, telemetry};
use gateway::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    biz_core::install_crypto_provider();
    let (settings, notes) = Settings::load()?;
    let _telemetry = telemetry::init("gateway", &settings, &notes)?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => serve(settings).await,
        Some("migrate") => migrate(settings).await,
        Some("rotate-encryption-key") => rotate(settings).await,
        Some("load-fx-rates") => {
            let file = std::env::args()
                .nth(2)
                .context("usage: gateway load-fx-rates FILE.csv")?;
            load_fx_rates(settings, &file).await
        }
        Some(other) => anyhow::bail!(
            "unknown command `{other}`; use `gateway [serve|migrate|rotate-encryption-key|load-fx-rates FILE]`"
        ),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings.clone()).context("building the gateway")?;
    tracing::info!(
        addr = %settings.gateway.addr,
        port = app.port(),
        public_url = %settings.gateway.public_url,
        "gateway listening"
    );
    app.run().await.context("serving")
}

/// Loads global exchange rates (`date,base,quote,rate` CSV) for every organisation.
async fn load_fx_rates(settings: Settings, file: &str) -> anyhow::Result<()> {
    let reader = std::fs::File::open(file).with_context(|| format!("opening {file}"))?;
    let rates =
        biz_core::metrics::fx::parse_csv(reader).with_context(|| format!("reading {file}"))?;
    let pool = db::pool(&settings.database)?;
    let mut conn = db::conn(&pool).await?;
    let loaded = biz_core::metrics::fx::load(&mut conn, None, &rates).await?;
    println!("{loaded} exchange rates loaded from {file}");
    Ok(())
}

/// Re-seals every stored secret under the current key id (docs/SECURITY.md, "Rotating keys").
async fn rotate(settings: Settings) -> anyhow::Result<()> {
    let keys = biz_core::crypto::KeyRing::from_settings(&settings.security);
    let pool = db::pool(&settings.database)?;
    let mut conn = db::conn(&pool).await?;
    let report = db::rotation::rotate_all(&mut conn, &keys, 100)
        .await
        .context("rotating")?;
    for r in &report {
        tracing::info!(
            table = r.table,
            column = r.column,
            rotated = r.rotated,
            failed = r.failed,
            key_id = keys.current_key_id(),
            "secrets re-sealed"
        );
    }
    let left = db::rotation::remaining(&mut conn, &keys).await?;
    println!(
        "rotation to key `{}`: {} re-sealed, {} failed, {} left under other keys",
        keys.current_key_id(),
        report.iter().map(|r| r.rotated).sum::<u64>(),
        report.iter().map(|r| r.failed).sum::<u64>(),
        left
    );
    anyhow::ensure!(
        left == 0,
        "{left} secrets are still under other keys; see the log"
    );
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let created = db::create_database_if_missing(settings.database.url.expose_secret())
        .await
        .context("creating the database")?;
    let pool = db::pool(&settings.database)?;
    let applied = db::run_migrations(&pool)
        .await
        .context("running migrations")?;
    tracing::info!(
        database_created = created,
        migrations_applied = applied,
        "database ready"
    );
    Ok(())
}
