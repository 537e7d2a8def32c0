//! An agent dialled a feature code (`*21` …, see [`crate::acd::features`]): the call is
//! answered, the ACD changes the agent's state, a prompt confirms, and the engine hangs up.

use std::time::Instant;

use tracing::{info, warn};

use super::{CallInput, CallerLeg};
use crate::acd::AcdError;
use crate::acd::features::Feature;
use crate::acd::service::{AcdCommand, AgentView};

impl CallerLeg {
    pub(super) fn feature_code(&mut self, feature: Feature, now: Instant) {
        let from_user = crate::sip::headers::parse_request_uri(self.info.from.uri.as_bytes())
            .ok()
            .and_then(|u| u.user)
            .unwrap_or_default();
        let Some(agent) = self
            .endpoint
            .agent_calling_from(&from_user, self.flow.peer())
        else {
            warn!(?feature, peer = %self.flow.peer(),
                "feature code from a phone that is no agent's (register it, or dial from the agent's static URI)");
            return self.confirm_and_end("feature_refused", now);
        };
        info!(event = "feature", ?feature, %agent, "agent feature code");
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.endpoint.acd().send(AcdCommand::Agent {
            agent,
            op: feature.op(),
            reply: Some(reply),
        });
        self.feature = Some(feature);
        // The ACD answers on its own task; the result comes back as a call input.
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let result = answer
                .await
                .unwrap_or_else(|_| Err(AcdError::UnknownAgent(String::new())));
            let _ = tx.send(Box::new(CallInput::Feature(result))).await;
        });
    }

    pub(super) fn on_feature_result(&mut self, result: Result<AgentView, AcdError>, now: Instant) {
        let Some(feature) = self.feature.take() else {
            return;
        };
        let prompt = match &result {
            Ok(view) => {
                info!(agent = %view.id, state = view.state, "feature code done");
                feature.confirmation()
            }
            Err(error) => {
                info!(%error, ?feature, "feature code refused");
                "feature_refused"
            }
        };
        self.confirm_and_end(prompt, now);
    }

    /// Plays `prompt` (when the rules folder has it), then hangs up.
    fn confirm_and_end(&mut self, prompt: &str, now: Instant) {
        if self.rules.prompts.contains(prompt) {
            self.end_after(&[prompt.to_string()], now);
        } else {
            self.hang_up(now, "feature code done");
        }
    }
}
