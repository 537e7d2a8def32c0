//! Shared harness for the end-to-end tests (each `tests/*.rs` file pulls it in with `mod common;`).
//!
//! - [`engine`] — starts the real `zentrale serve` on free loopback ports with a scratch data
//!   directory, waits until it answers OPTIONS, captures its log, kills it on drop.
//! - [`sipp`] — runs SIPp scenarios from `tests/sipp/` against an engine, bounded in time, and
//!   reads SIPp's statistics file for the successful/failed call counts.
//! - [`sip`] — a tiny SIP client over UDP (and a TCP helper) for tests that need exact bytes or
//!   exact timing: builds INVITE/ACK/BYE/OPTIONS, reads status codes and headers of replies.
//! - [`ports`] — free ports on 127.0.0.1 and non-overlapping RTP ranges for parallel engines.
//! - [`logs`] — the engine's JSON log lines as events (per call, waiting for one).
//! - [`rtp`] — an RTP peer for tests: receives the engine's media, sends telephone-events and
//!   audio, decodes G.711 and finds prompts by normalized cross-correlation.
//! - [`flows`] — ACD call flows: a caller with RTP who presses keys and hears prompts, an
//!   agent's phone on a raw UDP socket (ring, answer, reject, CANCEL/BYE handling, hang up), and
//!   agent states from the API and the log.
//! - [`postgres`] — a throw-away PostgreSQL server (Debian package `postgresql`) on a free
//!   loopback port, for the call-records tests.
//! - [`scratch`] — per-test directories under Cargo's target tmp dir, kept when a test fails.
//!
//! Every test starts its own engine, so tests run in parallel without sharing state.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod acd;
pub mod engine;
pub mod flows;
pub mod http;
pub mod logs;
pub mod ports;
pub mod postgres;
pub mod rtp;
pub mod scratch;
pub mod sip;
pub mod sipp;
