//! The caller in a department queue: joining the ACD, music on hold with position
//! announcements, the leave key, overflow by the queue's actions, and the end of the wait
//! (connected, or gone).

use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::{AfterPlayback, CallerLeg};
use crate::acd::OverflowReason;
use crate::acd::service::{AcdCommand, AcdNotice};
use crate::events::CallEventKind;
use crate::media::session::MediaCommand;

/// Position announcements only name numbers we have prompts for (`num_1` … `num_20`).
const MAX_SPOKEN_POSITION: u32 = 20;

/// A caller waiting in a queue.
pub(super) struct Waiting {
    pub queue: String,
    /// When to announce the position next.
    pub next_position: Option<Instant>,
    every: Option<Duration>,
}

impl CallerLeg {
    /// Plays the entry announcements, then music on hold, and asks the ACD for an agent.
    pub(super) fn join_queue(
        &mut self,
        queue: &str,
        priority: u8,
        announce: Vec<String>,
        now: Instant,
    ) {
        let definition = self.rules.rules.queues.get(queue);
        let mut prompts = announce;
        prompts.extend(definition.and_then(|q| q.entry_prompt.clone()));
        let music = definition.and_then(|q| q.music_on_hold.clone());
        let every = definition
            .and_then(|q| q.announce_position_every_secs)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s)));
        self.after_playback = AfterPlayback::Hold(music);
        self.play(&prompts);
        self.waiting = Some(Waiting {
            queue: queue.to_string(),
            next_position: every.map(|e| now + e),
            every,
        });
        let acd = self.endpoint.acd().clone();
        let call = *self.acd_call.get_or_insert_with(|| acd.new_call_id());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.acd_notices = Some(rx);
        acd.send(AcdCommand::Join {
            call,
            call_id: self.event_call_id.clone(),
            queue: queue.to_string(),
            priority,
            notices: tx,
        });
    }

    pub(super) fn on_acd_notice(&mut self, notice: AcdNotice, now: Instant) {
        let caller_gone = !matches!(
            self.state,
            super::LegState::Answered | super::LegState::Confirmed
        );
        match notice {
            AcdNotice::Ring {
                agent,
                queue,
                freed_at,
                trigger,
                ..
            } => {
                if caller_gone || self.connected_agent.is_some() {
                    // The ACD learns the caller left from our Ended; this ring is void.
                    if let Some(call) = self.acd_call {
                        self.endpoint.acd().send(AcdCommand::LegFailed {
                            call,
                            agent,
                            failure: crate::acd::LegFailure::Busy,
                        });
                    }
                    return;
                }
                self.ring_agent(&agent, &queue, (freed_at, trigger), now);
            }
            AcdNotice::CancelRing { agent, reason } => self.cancel_agent(&agent, reason, now),
            AcdNotice::Connected { agent } => {
                if caller_gone {
                    self.cancel_agent(&agent, "withdrawn", now);
                } else {
                    self.connect_agent(&agent, now);
                }
            }
            AcdNotice::Overflow { queue, reason } => {
                if !caller_gone {
                    self.overflow(&queue, reason, now);
                }
            }
            AcdNotice::Position { position, waiting } => {
                if !caller_gone && self.waiting.is_some() && self.connected_agent.is_none() {
                    self.announce_position(position, waiting);
                }
            }
        }
    }

    /// Leaves the queue by its action for `reason` (full, waited too long, nobody logged in).
    fn overflow(&mut self, queue: &str, reason: OverflowReason, now: Instant) {
        let reason_name = match reason {
            OverflowReason::Full => "full",
            OverflowReason::MaxWait => "max_wait",
            OverflowReason::NoAgents => "no_agents",
        };
        info!(event = "overflow", %queue, reason = reason_name, "caller leaves the queue");
        self.left_queue(queue, reason_name);
        let definition = self.rules.rules.queues.get(queue);
        let action = definition.and_then(|q| match reason {
            OverflowReason::Full => q.on_full.clone(),
            OverflowReason::MaxWait => q.on_max_wait.clone(),
            OverflowReason::NoAgents => q.on_no_agents.clone(),
        });
        self.follow(action, now);
    }

    fn left_queue(&mut self, queue: &str, reason: &str) {
        self.waiting = None;
        self.emit(CallEventKind::LeftQueue {
            queue: queue.to_string(),
            reason: reason.to_string(),
        });
        if let Some(media) = &self.media {
            media.command(MediaCommand::Stop);
        }
        self.after_playback = AfterPlayback::Nothing;
    }

    /// Goes where `action` says; without one, the caller hears goodbye (never silence).
    fn follow(&mut self, action: Option<crate::rules::model::Action>, now: Instant) {
        match action {
            Some(action) => {
                self.facts.queues = self.endpoint.acd().snapshot().queue_states();
                let decision = self.rules.rules.evaluate_action(
                    &action,
                    &self.facts,
                    self.topic.clone(),
                    chrono::Utc::now(),
                );
                self.apply_decision(decision, now);
            }
            None => self.end_after(&["goodbye".to_string()], now),
        }
    }

    pub(super) fn on_key_while_waiting(&mut self, key: char, now: Instant) {
        let Some(waiting) = &self.waiting else { return };
        let queue = waiting.queue.clone();
        let definition = self.rules.rules.queues.get(&queue);
        if definition.and_then(|q| q.leave_key) != Some(key) {
            debug!(%key, "key while waiting ignored");
            return;
        }
        info!(event = "leave", %queue, %key, "caller left the queue by key");
        self.emit(CallEventKind::Key {
            key,
            source: "leave".into(),
            barge_in: false,
        });
        let action = definition.and_then(|q| q.on_leave.clone());
        // Out of the ACD first (its rings are cancelled), then on by the leave action.
        self.leave_acd(now);
        self.left_queue(&queue, "key");
        self.follow(action, now);
    }

    pub(super) fn on_queue_timers(&mut self, now: Instant) {
        let Some(waiting) = self.waiting.as_mut() else {
            return;
        };
        if waiting.next_position.is_some_and(|t| t <= now) {
            waiting.next_position = waiting.every.map(|e| now + e);
            if let Some(call) = self.acd_call {
                self.endpoint.acd().send(AcdCommand::Position { call });
            }
        }
    }

    /// "Sie sind an Position N", then music on hold again.
    fn announce_position(&mut self, position: u32, waiting: u32) {
        if position == 0 || position > MAX_SPOKEN_POSITION {
            debug!(position, waiting, "position not announced");
            return;
        }
        let music = self
            .waiting
            .as_ref()
            .and_then(|w| self.rules.rules.queues.get(&w.queue))
            .and_then(|q| q.music_on_hold.clone());
        self.emit(CallEventKind::Announce { position });
        self.after_playback = AfterPlayback::Hold(music);
        self.play(&[
            "position_prefix".to_string(),
            format!("num_{position}"),
            "position_suffix".to_string(),
        ]);
    }

    /// The caller is done with the ACD (hung up, left, or the call ended): the ACD frees or
    /// wraps up its agent, and our agent legs end.
    pub(super) fn leave_acd(&mut self, now: Instant) {
        if let Some(call) = self.acd_call.take() {
            self.endpoint.acd().send(AcdCommand::Ended { call });
        }
        self.acd_notices = None;
        self.waiting = None;
        self.end_agent_legs(now);
    }

    /// Bridges the caller's media with the agent's (RTP relay through the engine).
    pub(super) fn bridge_media(
        &mut self,
        port: crate::media::rtp_ports::RtpPort,
        answer: &crate::media::sdp::Offer,
        _now: Instant,
    ) {
        let Some(media) = &self.media else { return };
        let law = match answer.codecs.first().map(|c| c.1) {
            Some(crate::media::sdp::Codec::Pcma) => crate::media::prompts::Law::Alaw,
            _ => crate::media::prompts::Law::Ulaw,
        };
        let Some(ip) = answer.address else {
            debug!("agent SDP without a connection address; relay waits for its first packet");
            return;
        };
        media.command(MediaCommand::Bridge(crate::media::session::Bridge {
            port,
            remote: std::net::SocketAddr::new(ip, answer.audio_port),
            law,
            telephone_event: answer.telephone_event,
        }));
    }
}
