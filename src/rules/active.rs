//! The rules in force: a validated [`RuleSet`] together with the audio of every prompt it can
//! play, loaded as one unit. A reload builds a complete new `ActiveRules` (rules *and* prompts)
//! before swapping, so a call never meets rules whose prompts are missing.

use std::path::Path;

use super::{RuleSet, diagnostic::render_all, load_dir};
use crate::acd::features::{FEATURE_CODES, FEATURE_PROMPTS};
use crate::media::prompts::PromptLibrary;

pub struct ActiveRules {
    pub rules: RuleSet,
    pub prompts: PromptLibrary,
    /// Every dialled number the rules answer, including `00…` spellings of `+…` numbers (for
    /// the SIP layer's 404 decision).
    pub served_numbers: Vec<String>,
}

impl ActiveRules {
    /// Loads and validates `dir`; the error is the operator's report (file:line: reason).
    pub fn load(dir: &Path) -> Result<ActiveRules, String> {
        let rules = load_dir(dir).map_err(|diagnostics| render_all(&diagnostics))?;
        let mut used = rules.prompts_used();
        let mut served_numbers = Vec::new();
        if !rules.agents.is_empty() {
            // Agents' feature codes, with their confirmations where the folder has them
            // (without one, the call is answered and ended: the state still changes).
            let dir = dir.join("prompts");
            used.extend(
                FEATURE_PROMPTS
                    .iter()
                    .filter(|p| dir.join(format!("{p}.wav")).is_file())
                    .map(|p| p.to_string()),
            );
            served_numbers.extend(FEATURE_CODES.iter().map(|(code, _)| code.to_string()));
        }
        let prompts = PromptLibrary::load(&dir.join("prompts"), used).map_err(|e| e.to_string())?;
        for number in rules.dialled_numbers() {
            served_numbers.push(number.to_string());
            if let Some(rest) = number.strip_prefix('+') {
                served_numbers.push(format!("00{rest}"));
            }
        }
        Ok(ActiveRules {
            rules,
            prompts,
            served_numbers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_load_with_their_prompts() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/routing-rules"));
        let active = ActiveRules::load(dir).expect("shipped rules are valid");
        for name in active.rules.prompts_used() {
            assert!(active.prompts.contains(&name), "prompt {name} loaded");
        }
        for number in ["490", "+493641490", "03641490", "00493641490"] {
            assert!(
                active.served_numbers.iter().any(|n| n == number),
                "{number}"
            );
        }
    }
}
