//! The caller leg's media, menu and routing: the media task plays what the rules decide, keys
//! from any source answer the menu step, and each answer asks the rules again.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::menu::Collect;
use super::{AfterPlayback, CallerLeg, LegState};
use crate::events::CallEventKind;
use crate::media::prompts::{Law, Prompt};
use crate::media::sdp;
use crate::media::session::{self, DtmfSource, MediaCommand, MediaConfig, MediaEvent};
use crate::rules::{MenuInput, Outcome};

impl CallerLeg {
    // ----- media, menu and routing ---------------------------------------------------------

    /// Hands the RTP socket to a media task that plays and listens for this call.
    pub(super) fn start_media(&mut self) {
        let Some(port) = self.rtp.take() else { return };
        let config = self.endpoint.config();
        let (law, telephone_event, remote, held) = match &self.offer {
            Some(offer) => (
                match offer.codecs.first().map(|c| c.1) {
                    Some(sdp::Codec::Pcma) => Law::Alaw,
                    _ => Law::Ulaw,
                },
                offer.telephone_event,
                offer
                    .address
                    .map(|ip| std::net::SocketAddr::new(ip, offer.audio_port)),
                // Until a re-INVITE resumes (our answer says `recvonly` / `inactive`).
                offer.direction.holds(),
            ),
            // Offerless INVITE: our offer lists PCMU first and telephone-event as 101.
            None => (Law::Ulaw, Some(101), None, false),
        };
        let (handle, events) = session::spawn(
            port,
            MediaConfig {
                law,
                telephone_event,
                remote,
                rtp_timeout: config.rtp_timeout,
                inband_dtmf: config.inband_dtmf,
                held,
            },
            self.endpoint.media_stats().clone(),
        );
        self.media_events = Some(events);
        self.media = Some(handle);
    }

    pub(super) fn play(&mut self, names: &[String]) {
        let prompts: Vec<Prompt> = names
            .iter()
            .filter_map(|name| {
                let prompt = self.rules.prompts.get(name).cloned();
                if prompt.is_none() {
                    // Validation guarantees every prompt the rules name; never dead air anyway.
                    warn!(prompt = %name, "prompt missing from the loaded rules; skipped");
                }
                prompt
            })
            .collect();
        debug!(event = "play", prompts = ?names, "playing");
        self.emit(CallEventKind::Play {
            prompts: names.to_vec(),
        });
        if let Some(media) = &self.media {
            media.command(MediaCommand::Play(prompts));
        }
    }

    /// Asks the rules where the call goes now, and does it.
    pub(super) fn decide(&mut self, now: Instant) {
        if !matches!(self.state, LegState::Answered | LegState::Confirmed) {
            return;
        }
        if let Some(feature) = crate::acd::features::Feature::parse(&self.facts.dialled) {
            return self.feature_code(feature, now);
        }
        self.facts.queues = self.endpoint.acd().snapshot().queue_states();
        let decision = self.rules.rules.decide(&self.facts, chrono::Utc::now());
        self.apply_decision(decision, now);
    }

    /// Does what the rules decided.
    pub(super) fn apply_decision(&mut self, decision: crate::rules::Decision, now: Instant) {
        if decision.topic.is_some() {
            self.topic = decision.topic.clone();
        }
        let topic = decision.topic.clone().unwrap_or_default();
        match decision.outcome {
            Outcome::Menu {
                menu,
                prompts,
                timeout_secs,
                attempt,
            } => {
                debug!(event = "menu", %menu, attempt, rules_version = %decision.rules_version, "menu");
                self.emit(CallEventKind::Menu {
                    menu: menu.clone(),
                    attempt,
                });
                self.after_playback = AfterPlayback::Nothing;
                self.play(&prompts);
                self.step = Some(Collect::start(Duration::from_secs(u64::from(timeout_secs))));
            }
            Outcome::Queue {
                queue,
                announce,
                priority,
            } => {
                self.emit(CallEventKind::Queued {
                    queue: queue.clone(),
                    topic: decision.topic.clone(),
                });
                debug!(event = "queue", %queue, %topic, rules_version = %decision.rules_version,
                    "caller queued");
                self.join_queue(&queue, priority, announce, now);
            }
            Outcome::Hangup { announce } | Outcome::NoRoute { announce } => {
                self.emit(CallEventKind::AnnounceAndHangUp {
                    topic: decision.topic.clone(),
                });
                debug!(event = "announce_and_hang_up", %topic, rules_version = %decision.rules_version,
                    "announcement, then hang-up");
                self.end_after(&announce, now);
            }
            Outcome::Forward { announce, .. }
            | Outcome::Callback { announce, .. }
            | Outcome::Voicemail { announce, .. } => {
                warn!(event = "unsupported_route", %topic, "forward, callback and voicemail are not available yet; announcing and hanging up");
                let mut prompts = announce;
                prompts.push("goodbye".to_string());
                self.end_after(&prompts, now);
            }
            Outcome::NotOurNumber => self.hang_up(now, "number not in the rules"),
        }
    }

    pub(super) fn end_after(&mut self, announce: &[String], now: Instant) {
        if announce.is_empty() {
            self.hang_up(now, "route ends the call");
        } else {
            self.after_playback = AfterPlayback::HangUp;
            self.play(announce);
        }
    }

    pub(super) fn on_key(&mut self, key: char, source: DtmfSource, now: Instant) {
        if self.waiting.is_some() {
            return self.on_key_while_waiting(key, now);
        }
        let Some(step) = self.step.as_mut() else {
            debug!(%key, ?source, "key outside a menu ignored");
            return;
        };
        let Some(result) = step.on_key(key) else {
            return;
        };
        debug!(event = "key", %key, ?source, barge_in = result.barge_in, "caller pressed a key");
        self.emit(CallEventKind::Key {
            key,
            source: format!("{source:?}"),
            barge_in: result.barge_in,
        });
        self.step = None;
        if result.barge_in
            && let Some(media) = &self.media
        {
            media.command(MediaCommand::Stop);
        }
        self.facts.inputs.push(MenuInput::Key(key));
        self.decide(now);
    }

    pub(super) fn on_media_event(&mut self, event: MediaEvent, now: Instant) {
        match event {
            MediaEvent::Digit(key, source) => self.on_key(key, source, now),
            MediaEvent::PlaybackFinished => {
                if let Some(step) = self.step.as_mut() {
                    step.on_prompts_finished(now);
                }
                match std::mem::replace(&mut self.after_playback, AfterPlayback::Nothing) {
                    AfterPlayback::Nothing => {}
                    AfterPlayback::Hold(music) => {
                        let prompt = music.and_then(|m| self.rules.prompts.get(&m).cloned());
                        if let (Some(media), Some(prompt)) = (&self.media, prompt) {
                            media.command(MediaCommand::Loop(prompt));
                        }
                    }
                    AfterPlayback::HangUp => self.hang_up(now, "announcement played"),
                }
            }
            // Only a confirmed call can time out on RTP: before the ACK, the 2xx retransmission
            // timer decides (RFC 3261 §13.3.1.4).
            MediaEvent::RtpTimeout if self.state == LegState::Confirmed => {
                info!("no RTP from the caller; hanging up");
                self.hang_up(now, "RTP timeout");
            }
            MediaEvent::RtpTimeout => {}
        }
    }
}
