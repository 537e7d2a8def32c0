//! # zentrale — a SIP call-routing engine for citizen hotlines
//!
//! The path of one call and the modules it crosses (see `README.md` and the design notes):
//!
//! - [`sip`] — our own SIP layer: message parsing and validation ([`sip::message`],
//!   [`sip::validate`]), RFC 3261 transaction state machines that take the time as an argument
//!   ([`sip::transaction`]), UDP and TCP transports ([`sip::transport`]) and the endpoint that
//!   runs each received message to completion and hands dialog traffic to its call
//!   ([`sip::endpoint`]).
//! - [`call`] — one task per call: the caller leg as a B2BUA user-agent server (answer, CANCEL,
//!   re-INVITE, session timers, BYE from either side, 2xx retransmission until ACK).
//! - [`media`] — SDP answers and the RTP port pool (prompts, DTMF and the relay come later).
//! - [`acd`] — the pure ACD: queues, agent states, strategies; `now` in, decisions out, no sockets.
//! - [`rules`] — the routing rules admins edit (`routing-rules/*.toml`): loading with
//!   compiler-style errors, calendars and holidays, pure evaluation of facts + time → decision.
//! - [`hash`] — the hash maps of the call path (foldhash, a random seed per map).
//! - [`events`] — the `CallEvent` bus every call publishes to (metrics, records, dashboard).
//! - [`metrics`] — Prometheus metrics at `/metrics`: call events counted by a bus subscriber,
//!   engine counters (SIP, RTP, reloads, calendars) read at scrape time.
//! - [`records`] — call detail records and the queue event log (SQLite or PostgreSQL), written
//!   in batches by a task fed from the bus; the KPIs of `zentrale report`.
//! - [`config`] — one [`config::Settings`] from embedded defaults, a TOML file and
//!   `ZENTRALE_*` environment variables.
//! - [`reload`] — hot reload of the routing rules (file watch, SIGHUP, API) with atomic swap.
//! - [`overload`] — the overload guard: a probe measures how far the engine runs behind, a
//!   detector with hysteresis decides when new calls get `503` (all but the share the engine
//!   can finish) so the running ones can finish.
//! - [`shutdown`] — the graceful-shutdown signal every task watches.
//! - [`timer`] — one runtime timer per task, moved when the task's next deadline changes.
//! - [`server`] — wires the parts together for `zentrale serve`.
//! - [`logging`] — tracing set-up (human or JSON lines).
//! - [`web`] — HTTP: `/healthz` today; metrics, admin API and dashboard later.

pub mod acd;
pub mod call;
pub mod config;
pub mod events;
pub mod hash;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod overload;
pub mod records;
pub mod reload;
pub mod rules;
pub mod server;
pub mod shutdown;
pub mod sip;
pub mod timer;
pub mod web;
