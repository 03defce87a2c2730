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
        Some(other) => anyhow::bail!("unknown command `{other}`; use `gateway [serve|migrate]`"),
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
