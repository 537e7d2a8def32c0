//! Phone feature codes for agents: dialled from the agent's own phone, they change the agent's
//! state without a computer (the HTTP API does the same for the dashboard).
//!
//! | dial | does | confirmation prompt |
//! |---|---|---|
//! | `*21` | log in | `agent_logged_in` |
//! | `*22` | log out | `agent_logged_out` |
//! | `*23` | pause ("pause by phone") | `agent_paused` |
//! | `*24` | back from pause, or wrap-up done | `agent_ready` |
//!
//! A refused change (e.g. pausing while logged out) plays `feature_refused`. The engine knows
//! who dials by where the call comes from: a registered phone's binding, or a static agent's
//! URI address (see `Endpoint::agent_calling_from`).

use super::service::AgentOp;

/// The codes, their operation and the prompt that confirms it.
pub const FEATURE_CODES: [(&str, Feature); 4] = [
    ("*21", Feature::Login),
    ("*22", Feature::Logout),
    ("*23", Feature::Pause),
    ("*24", Feature::Resume),
];

/// Prompts the feature codes play (loaded with the rules when agents exist and present).
pub const FEATURE_PROMPTS: [&str; 5] = [
    "agent_logged_in",
    "agent_logged_out",
    "agent_paused",
    "agent_ready",
    "feature_refused",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Login,
    Logout,
    Pause,
    Resume,
}

impl Feature {
    /// The feature a dialled number asks for (`*21`, also `%2A21` as some phones escape it).
    pub fn parse(dialled: &str) -> Option<Feature> {
        let dialled = dialled.replace("%2A", "*").replace("%2a", "*");
        FEATURE_CODES
            .iter()
            .find(|(code, _)| *code == dialled)
            .map(|(_, f)| *f)
    }

    pub fn op(self) -> AgentOp {
        match self {
            Feature::Login => AgentOp::Login,
            Feature::Logout => AgentOp::Logout,
            Feature::Pause => AgentOp::Pause("pause by phone".into()),
            Feature::Resume => AgentOp::Resume,
        }
    }

    pub fn confirmation(self) -> &'static str {
        match self {
            Feature::Login => "agent_logged_in",
            Feature::Logout => "agent_logged_out",
            Feature::Pause => "agent_paused",
            Feature::Resume => "agent_ready",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_and_others_do_not() {
        assert_eq!(Feature::parse("*21"), Some(Feature::Login));
        assert_eq!(Feature::parse("%2A22"), Some(Feature::Logout));
        assert_eq!(Feature::parse("*23"), Some(Feature::Pause));
        assert_eq!(Feature::parse("*24"), Some(Feature::Resume));
        assert_eq!(Feature::parse("*25"), None);
        assert_eq!(Feature::parse("490"), None);
        assert_eq!(Feature::parse("21"), None);
    }
}
