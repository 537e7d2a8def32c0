//! `zentrale serve`: binds the transports and runs until shutdown.

use crate::config::Settings;

/// Runs the engine until a shutdown signal (SIGTERM/Ctrl-C) and the drain are done.
pub async fn run(settings: Settings) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = settings;
    Ok(())
}
