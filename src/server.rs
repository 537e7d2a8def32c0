//! `zentrale serve`: binds the transports, runs until SIGTERM/Ctrl-C, drains, exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::{Settings, Transport};
use crate::media::rtp_ports::RtpPortPool;
use crate::reload::HotReload;
use crate::rules::active::ActiveRules;
use crate::shutdown::{Phase, Shutdown, ShutdownController};
use crate::sip::endpoint::{Endpoint, EndpointConfig, Limits};
use crate::sip::registrar::{Registrar, RegistrarConfig};
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{Transports, bind_udp, run_tcp, run_udp};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// After the drain time, calls get this long to finish their BYE exchange before we exit.
const HANGUP_GRACE: Duration = Duration::from_secs(5);

/// Runs the engine until a shutdown signal and the drain are done.
pub async fn run(settings: Settings) -> Result<(), BoxError> {
    // First, before any port is bound: a SIGTERM or Ctrl-C while the engine starts must stop it
    // gracefully, not kill it by the signal's default action.
    let stop_requested = stop_signal().map_err(|e| {
        format!("cannot install the SIGTERM/SIGINT handlers the engine stops on: {e}")
    })?;
    let (controller, shutdown) = ShutdownController::new();
    let sip = &settings.sip;
    let rules_dir = settings.rules.dir.clone();
    let rules = HotReload::load(rules_dir.clone(), Box::new(ActiveRules::load)).map_err(|report| {
        format!(
            "the routing rules in {} are invalid (check them with `zentrale rules check {}`):\n{report}",
            rules_dir.display(),
            rules_dir.display()
        )
    })?;
    info!(dir = %rules_dir.display(), version = %rules.current().rules.version, "routing rules loaded");
    let listen = sip.listen;

    let udp = if sip.transports.contains(&Transport::Udp) {
        let socket = bind_udp(listen).map_err(|e| {
            format!("cannot bind SIP UDP {listen}: {e} (is another SIP server running? set sip.listen or ZENTRALE_SIP__LISTEN)")
        })?;
        Some(Arc::new(socket))
    } else {
        None
    };
    let tcp = if sip.transports.contains(&Transport::Tcp) {
        Some(TcpListener::bind(listen).await.map_err(|e| {
            format!("cannot bind SIP TCP {listen}: {e} (set sip.listen or ZENTRALE_SIP__LISTEN)")
        })?)
    } else {
        None
    };

    let mut tasks = Vec::new();
    let http = TcpListener::bind(settings.http.listen).await.map_err(|e| {
        format!(
            "cannot bind HTTP {}: {e} (set http.listen or ZENTRALE_HTTP__LISTEN)",
            settings.http.listen
        )
    })?;

    let advertised = if listen.ip().is_unspecified() {
        SocketAddr::new(settings.media.rtp_ip, listen.port())
    } else {
        listen
    };
    let config = EndpointConfig {
        limits: Limits {
            max_message_bytes: sip.max_message_bytes,
            max_calls: sip.max_calls,
            max_tcp_connections: sip.max_tcp_connections,
            tcp_idle_secs: sip.tcp_idle_secs,
            retry_after_secs: sip.retry_after_secs,
        },
        timers: TimerConfig {
            t1: sip.t1(),
            t2: sip.t2(),
            t4: sip.t4(),
        },
        user_agent: Bytes::from(sip.user_agent.clone()),
        advertised,
        answer_delay: Duration::from_millis(sip.answer_delay_ms),
        session_expires_secs: sip.session_expires_secs,
        min_se_secs: sip.min_se_secs,
        show_caller_numbers: settings.log.show_caller_numbers,
        symmetric_response: sip.symmetric_response,
        rtp_timeout: Duration::from_secs(settings.media.rtp_timeout_secs),
        inband_dtmf: settings.media.inband_dtmf,
    };
    let rtp = RtpPortPool::new(
        settings.media.rtp_ip,
        settings.media.rtp_port_min,
        settings.media.rtp_port_max,
    );
    fit_open_file_limit(&settings, &rtp);
    let (acd, acd_handle, acd_commands) = {
        let active = rules.current();
        crate::acd::service::AcdService::new(
            active.rules.queues.values(),
            active.rules.agents.values(),
            crate::acd::AcdSettings {
                max_no_answers: settings.acd.max_no_answers,
                retry_after: Duration::from_secs(settings.acd.retry_after_secs),
                ..crate::acd::AcdSettings::default()
            },
            active.rules.version.hash.clone(),
            std::time::Instant::now(),
        )
    };
    let registrar = Arc::new(Registrar::new(RegistrarConfig {
        realm: sip.realm.clone(),
        min_expires_secs: sip.register_min_expires_secs,
        max_expires_secs: sip.register_max_expires_secs,
        nonce_lifetime: Duration::from_secs(sip.nonce_lifetime_secs),
    }));
    let endpoint = Endpoint::new(
        config,
        Transports::new(udp.clone()),
        shutdown.clone(),
        rtp,
        rules.clone(),
        acd_handle,
        registrar.clone(),
    );
    {
        let events = endpoint.clone();
        let publish = Arc::new(move |e| events.events().publish(e));
        // Not in `tasks`: the ACD runs as long as the endpoint (which holds its handle) lives.
        let reach_endpoint = endpoint.clone();
        let reachable = Arc::new(move |agent: &str| {
            let active = reach_endpoint.rules().current();
            match active.rules.agents.get(agent).map(|a| &a.reach) {
                Some(crate::rules::model::Reach::Registration { .. }) => {
                    reach_endpoint.registered_target(agent).is_some()
                }
                _ => true,
            }
        });
        tokio::spawn(
            acd.with_events(publish)
                .with_reachability(reachable)
                .run(acd_commands),
        );
        tasks.push(tokio::spawn(crate::acd::keepalive::run(
            endpoint.clone(),
            Duration::from_secs(settings.acd.keepalive_secs),
            settings.acd.keepalive_failures,
            shutdown.clone(),
        )));
        // Rule reloads reach the ACD: new agents and queues, retired agents.
        let mut generations = rules.subscribe();
        let acd = endpoint.acd().clone();
        let reloaded = rules.clone();
        tokio::spawn(async move {
            while generations.changed().await.is_ok() {
                let active = reloaded.current();
                acd.send(crate::acd::service::AcdCommand::Reconfigure {
                    queues: active.rules.queues.values().cloned().collect(),
                    agents: active.rules.agents.values().cloned().collect(),
                    rules_version: active.rules.version.hash.clone(),
                });
            }
        });
        // Registrations coming and going make agents reachable or unreachable.
        let mut changes = registrar.changes();
        let acd = endpoint.acd().clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match changes.recv().await {
                    Ok(change) => acd.send(crate::acd::service::AcdCommand::Agent {
                        agent: change.agent,
                        op: crate::acd::service::AgentOp::Reachable(change.registered),
                        reply: None,
                    }),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
    // The overload guard measures from now on; off (never overloaded) with overload_lag_ms = 0.
    if sip.overload_lag_ms > 0 {
        let detector = crate::overload::Detector::new(
            Duration::from_millis(sip.overload_lag_ms),
            endpoint.overload_flag().clone(),
        );
        tasks.push(tokio::spawn(crate::overload::probe(
            detector,
            endpoint.clone(),
            shutdown.clone(),
        )));
    }
    // Subscribed before the transports run, so no call's first event is missed.
    let metrics = Arc::new(crate::metrics::Metrics::new());
    tasks.push(tokio::spawn(crate::metrics::run(
        metrics.clone(),
        endpoint.events().subscribe(),
        shutdown.clone(),
    )));
    // Call records: the database opens (and migrates) before any call comes in.
    tasks.extend(crate::records::start(&settings, endpoint.events(), shutdown.clone()).await?);
    tasks.push(tokio::spawn(purge_registrations(
        registrar,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(crate::reload::watch(
        rules.clone(),
        shutdown.clone(),
    )));

    if let Some(socket) = udp {
        // Two receivers on one socket keep both cores busy under load; each datagram still
        // runs to completion on the task that received it.
        for _ in 0..2 {
            tasks.push(tokio::spawn(run_udp(
                socket.clone(),
                endpoint.clone(),
                shutdown.clone(),
            )));
        }
    }
    if let Some(listener) = tcp {
        tasks.push(tokio::spawn(run_tcp(
            listener,
            endpoint.clone(),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::web::serve(
        http,
        endpoint.clone(),
        metrics,
        shutdown.clone(),
    )));
    let transports: Vec<&str> = sip
        .transports
        .iter()
        .map(|t| match t {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
        .collect();
    info!(sip = %listen, http = %settings.http.listen, transports = ?transports, "zentrale listening");

    stop_requested.await;
    let drain = Duration::from_secs(settings.shutdown.drain_secs);
    info!(
        active_calls = endpoint.active_calls(),
        drain_secs = drain.as_secs(),
        "shutdown requested: refusing new calls, draining running ones"
    );
    controller.advance(Phase::Draining);
    if !wait_for_calls(&endpoint, drain).await {
        info!(
            active_calls = endpoint.active_calls(),
            "drain time over: hanging up remaining calls"
        );
    }
    controller.advance(Phase::Hangup);
    if !wait_for_calls(&endpoint, HANGUP_GRACE).await {
        warn!(
            active_calls = endpoint.active_calls(),
            "calls still open after hang-up grace; exiting anyway"
        );
    }
    controller.advance(Phase::Closed);
    for task in tasks {
        let _ = task.await;
    }
    info!("zentrale stopped");
    Ok(())
}

/// How often expired registrations are removed (and announced as unregistered).
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Removes expired registrations every [`PURGE_INTERVAL`] until the engine stops.
async fn purge_registrations(registrar: Arc<Registrar>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                registrar.purge_expired(std::time::Instant::now());
            }
            _ = shutdown.stopped() => return,
        }
    }
}

/// Waits until no call is left or `limit` passes; true if no call is left.
async fn wait_for_calls(endpoint: &Endpoint, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while endpoint.active_calls() > 0 {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). Both handlers are installed when this is called,
/// not when the future is first polled (as `tokio::signal::ctrl_c()` would), so signals that
/// arrive in between are kept.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Descriptors kept free for everything but RTP: SIP over TCP, HTTP, the database, the log.
const OTHER_FILES: u64 = 1024;

/// Raises the open-file limit as far as allowed, warns when it is below what the RTP port
/// range can use, limits the RTP pairs (handed out or kept bound) to what it leaves after
/// [`OTHER_FILES`], and warns when those pairs allow fewer calls than `sip.max_calls`.
fn fit_open_file_limit(settings: &Settings, rtp: &RtpPortPool) {
    let Some(limit) = raise_open_file_limit() else {
        return;
    };
    let media = &settings.media;
    // Two descriptors per pair, i.e. one per port of the range.
    let needed = u64::from(media.rtp_port_max - media.rtp_port_min) + 1 + OTHER_FILES;
    if limit < needed {
        warn!(
            limit,
            needed,
            "the open-file limit is below what the RTP port range can use (4 per call): calls \
             beyond it get 503; raise it (LimitNOFILE= in the systemd unit, ulimit -n)"
        );
    } else {
        info!(limit, "open-file limit");
    }
    rtp.limit_pairs(rtp_pairs_for(limit));
    let calls = rtp.usage().callers_max();
    if settings.sip.max_calls > calls {
        warn!(
            max_calls = settings.sip.max_calls,
            calls,
            "the RTP ports (and open-file limit) allow fewer calls than sip.max_calls: calls \
             beyond them get 503 (no media port); widen media.rtp_port_min..rtp_port_max or \
             lower sip.max_calls"
        );
    }
}

/// RTP pairs (two descriptors each) an open-file limit allows, after [`OTHER_FILES`] — or half
/// the limit, if it is so low that those would take everything.
fn rtp_pairs_for(limit: u64) -> usize {
    let for_rtp = limit.saturating_sub(OTHER_FILES.min(limit / 2));
    usize::try_from(for_rtp / 2).unwrap_or(usize::MAX)
}

/// Raises this process's soft open-file limit to its hard limit (as Go's runtime does): each
/// call holds four sockets (two RTP/RTCP pairs), and shells often start programs with a soft
/// limit of 1,024. Returns the limit now in force (`None` if it cannot be read).
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::rtp_pairs_for;

    #[test]
    fn rtp_pairs_leave_descriptors_for_the_rest_but_never_all_of_them() {
        // 65,536 (the systemd unit) and 20,000: 1,024 kept, two per pair.
        assert_eq!(rtp_pairs_for(65_536), 32_256);
        assert_eq!(rtp_pairs_for(20_000), 9_488);
        // A shell's 1,024 would leave nothing after 1,024: half of it is kept instead.
        assert_eq!(rtp_pairs_for(1_024), 256);
        assert_eq!(rtp_pairs_for(0), 0);
    }
}
