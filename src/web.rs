//! The HTTP side: health for operators (systemd, container probes, load balancers). Metrics, the
//! admin API and the supervisor dashboard are added here later.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use std::convert::Infallible;

use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

use crate::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, EngineSnapshot, Metrics};
use crate::reload::Trigger;
use crate::shutdown::{Phase, Shutdown};
use crate::sip::endpoint::Endpoint;

pub fn router(endpoint: Arc<Endpoint>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route(
            "/metrics",
            get(move |State(endpoint): State<Arc<Endpoint>>| {
                let body = metrics.render(&EngineSnapshot::of(&endpoint));
                async move { ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body) }
            }),
        )
        .route("/api/registrations", get(registrations))
        .route("/api/rules", get(rules_version))
        .route("/api/events", get(call_events))
        .route("/api/rules/reload", post(reload_rules))
        .route("/api/agents", get(agents))
        .route("/api/queues", get(queues))
        .route("/api/agents/{agent}/{op}", post(agent_op))
        .with_state(endpoint)
}

/// 200 while the engine takes calls, 503 once it drains (so a balancer stops sending calls).
async fn health(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, Json<Value>) {
    let phase = endpoint.shutdown().phase();
    let stats = &endpoint.stats;
    let media = endpoint.media_stats();
    let pairs = endpoint.rtp_pool().usage();
    let body = json!({
        "status": if phase == Phase::Running { "ok" } else { "draining" },
        "version": env!("CARGO_PKG_VERSION"),
        "active_calls": endpoint.active_calls(),
        "sip_dialogs": endpoint.dialogs(),
        "calls_started": stats.calls_started.load(Ordering::Relaxed),
        "rejected_overload": stats.rejected_overload.load(Ordering::Relaxed),
        "overloaded": endpoint.overloaded(),
        "shed_overloaded": stats.shed_overloaded.load(Ordering::Relaxed),
        "sip_requests": stats.requests.load(Ordering::Relaxed),
        "sip_responses": stats.responses.load(Ordering::Relaxed),
        "sip_dropped": stats.dropped.load(Ordering::Relaxed),
        "rtp_packets_sent": media.packets_sent.load(Ordering::Relaxed),
        "rtp_packets_late": media.packets_late.load(Ordering::Relaxed),
        "rtp_packets_received": media.packets_received.load(Ordering::Relaxed),
        "rtp_frames_skipped": media.frames_skipped.load(Ordering::Relaxed),
        "rtp_port_pairs_in_use": pairs.held,
        "rtp_port_pairs_callers": pairs.callers,
        "rtp_port_pairs_max": pairs.max,
        "rules_version": endpoint.rules().current().rules.version.hash,
        "call_events": endpoint.events().published.load(Ordering::Relaxed),
    });
    let code = if phase == Phase::Running {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Serves HTTP until the transports close.
pub async fn serve(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let app = router(endpoint, metrics);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.stopped().await })
        .await;
}

/// Agents' phones registered now, by agent id.
async fn registrations(State(endpoint): State<Arc<Endpoint>>) -> Json<Value> {
    let now = std::time::Instant::now();
    let list: Vec<Value> = endpoint
        .registrar()
        .bindings(now)
        .into_iter()
        .map(|(agent, binding)| {
            json!({
                "agent": agent,
                "contact": binding.contact,
                "source": binding.source.to_string(),
                "expires_in_secs": binding.expires_at.saturating_duration_since(now).as_secs(),
            })
        })
        .collect();
    Json(Value::Array(list))
}

/// The rules in force: version, load time, reload counts and the last refused change.
async fn rules_version(State(endpoint): State<Arc<Endpoint>>) -> Json<Value> {
    let store = endpoint.rules();
    let active = store.current();
    Json(json!({
        "version": active.rules.version.hash,
        "loaded_at": active.rules.version.loaded_at,
        "files": active.rules.version.files,
        "dir": store.dir().display().to_string(),
        "reloads_ok": store.reloads_ok.load(Ordering::Relaxed),
        "reloads_failed": store.reloads_failed.load(Ordering::Relaxed),
        "last_error": store.last_error(),
    }))
}

/// Loads the rules folder again: 200 with the new version, or 422 with the errors (file:line:
/// reason) while the running rules stay in force.
async fn reload_rules(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, Json<Value>) {
    let store = endpoint.rules().clone();
    // Loading reads files and decodes prompts: keep it off the async worker threads.
    let result = tokio::task::spawn_blocking(move || store.reload(Trigger::Api)).await;
    match result {
        Ok(Ok(active)) => (
            StatusCode::OK,
            Json(json!({ "status": "reloaded", "version": active.rules.version.hash })),
        ),
        Ok(Err(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "status": "refused", "errors": errors })),
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "status": "failed" })),
        ),
    }
}

/// Every call event as it happens, as server-sent events (`data: {json}` per event). A client
/// that falls behind gets a `lagged` event saying how many it missed.
async fn call_events(
    State(endpoint): State<Arc<Endpoint>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(endpoint.events().subscribe()).map(|item| {
        Ok(match item {
            Ok(event) => Event::default()
                .json_data(&*event)
                .unwrap_or_else(|_| Event::default().event("error")),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                Event::default().event("lagged").data(missed.to_string())
            }
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Every agent with its state (the supervisor's view).
async fn agents(State(endpoint): State<Arc<Endpoint>>) -> Json<Value> {
    let snapshot = endpoint.acd().snapshot();
    let now = std::time::Instant::now();
    let agents: Vec<_> = snapshot
        .agents
        .iter()
        .map(|a| a.load().fresh(now))
        .collect();
    Json(json!({ "agents": agents }))
}

/// Every queue's live figures: callers waiting and ringing, longest wait, agents by state.
async fn queues(State(endpoint): State<Arc<Endpoint>>) -> Json<Value> {
    let snapshot = endpoint.acd().snapshot();
    Json(json!({ "queues": snapshot.queues }))
}

#[derive(Debug, Default, serde::Deserialize)]
struct OpBody {
    reason: Option<String>,
}

/// `POST /api/agents/{agent}/{login|logout|pause|unpause|ready}`; pause takes an optional
/// JSON body `{"reason": "…"}`. 200 with the agent's new state; 404 for an unknown agent;
/// 409 when the state machine refuses (e.g. pausing a logged-out agent).
async fn agent_op(
    State(endpoint): State<Arc<Endpoint>>,
    Path((agent, op)): Path<(String, String)>,
    body: Option<Json<OpBody>>,
) -> (StatusCode, Json<Value>) {
    use crate::acd::AcdError;
    use crate::acd::service::AgentOp;
    let reason = body.and_then(|Json(b)| b.reason);
    let action = match op.as_str() {
        "login" => AgentOp::Login,
        "logout" => AgentOp::Logout,
        "pause" => AgentOp::Pause(reason.unwrap_or_else(|| "pause".into())),
        "unpause" => AgentOp::Unpause,
        "ready" => AgentOp::Ready,
        other => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({
                    "error": format!("unknown operation `{other}`; use login, logout, pause, unpause or ready")
                })),
            );
        }
    };
    match endpoint.acd().agent(&agent, action).await {
        Ok(view) => {
            tracing::info!(agent = %view.id, %op, state = view.state, "agent changed through the API");
            (StatusCode::OK, Json(json!({ "agent": view })))
        }
        Err(AcdError::UnknownAgent(id)) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no agent `{id}` in agents.toml") })),
        ),
        Err(error) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": error.to_string() })),
        ),
    }
}
