//! The HTTP side: health for operators (systemd, container probes, load balancers). Metrics, the
//! admin API and the supervisor dashboard are added here later.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::shutdown::{Phase, Shutdown};
use crate::sip::endpoint::Endpoint;

pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .with_state(endpoint)
}

/// 200 while the engine takes calls, 503 once it drains (so a balancer stops sending calls).
async fn health(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, Json<Value>) {
    let phase = endpoint.shutdown().phase();
    let stats = &endpoint.stats;
    let body = json!({
        "status": if phase == Phase::Running { "ok" } else { "draining" },
        "version": env!("CARGO_PKG_VERSION"),
        "active_calls": endpoint.active_calls(),
        "calls_started": stats.calls_started.load(Ordering::Relaxed),
        "rejected_overload": stats.rejected_overload.load(Ordering::Relaxed),
        "sip_requests": stats.requests.load(Ordering::Relaxed),
        "sip_responses": stats.responses.load(Ordering::Relaxed),
        "sip_dropped": stats.dropped.load(Ordering::Relaxed),
    });
    let code = if phase == Phase::Running {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Serves HTTP until the transports close.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>, mut shutdown: Shutdown) {
    let app = router(endpoint);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.stopped().await })
        .await;
}
