//! `[queue.<id>]` and `[agent.<id>]`: limits, overflows, skills, and how agents are reached.

use std::collections::BTreeMap;

use toml::Spanned;

use super::super::diagnostic::{Diagnostic, Location, did_you_mean};
use super::super::file::{self, ActionDef};
use super::super::model::{
    Agent, Escalation, PasswordSource, Queue, Reach, ServiceLevel, Strategy, position_prompts,
};
use super::{ActionPlace, Entry, Loader};

impl Loader<'_> {
    pub(super) fn queue(&mut self, entry: &Entry<file::QueueDef>) -> Option<Queue> {
        let def = &entry.def;
        let file = entry.file;
        let strategy = match &def.strategy {
            None => Strategy::LongestIdle,
            Some(name) => match Strategy::ALL.iter().find(|(n, _)| n == name.get_ref()) {
                Some((_, strategy)) => *strategy,
                None => {
                    let names: Vec<&str> = Strategy::ALL.iter().map(|(n, _)| *n).collect();
                    let guess = did_you_mean(name.get_ref(), names.iter().copied())
                        .map(|g| format!("did you mean `{g}`? "))
                        .unwrap_or_default();
                    self.error(
                        file,
                        name.span(),
                        format!("unknown strategy `{}`", name.get_ref()),
                        format!("{guess}strategies: {}", names.join(", ")),
                    );
                    Strategy::LongestIdle
                }
            },
        };
        let level = |loader: &mut Self, value: &Spanned<u8>| {
            let level = *value.get_ref();
            if !(1..=9).contains(&level) {
                loader.error(
                    file,
                    value.span(),
                    format!("skill level {level} is out of range"),
                    "skill levels go from 1 (basic) to 9 (expert)".into(),
                );
            }
            level
        };
        let min_level = def.min_level.as_ref().map_or(1, |l| level(self, l));
        let mut escalation = Vec::new();
        let mut last_after = 0;
        for step in &def.escalation {
            let e = step.get_ref();
            if e.after_secs <= last_after && !escalation.is_empty() || e.after_secs == 0 {
                self.error(
                    file,
                    step.span(),
                    format!("escalation after {} s is out of order", e.after_secs),
                    "list escalation steps by rising after_secs (each > 0)".into(),
                );
            }
            last_after = e.after_secs;
            if e.min_level > 9 {
                self.error(
                    file,
                    step.span(),
                    format!("skill level {} is out of range", e.min_level),
                    "escalation min_level goes from 0 (any agent) to 9".into(),
                );
            }
            escalation.push(Escalation {
                after_secs: e.after_secs,
                min_level: e.min_level,
            });
        }
        let positive = |loader: &mut Self, value: &Option<Spanned<u32>>, field: &str| {
            let value = value.as_ref()?;
            if *value.get_ref() == 0 {
                loader.error(
                    file,
                    value.span(),
                    format!("{field} = 0 is out of range"),
                    format!("{field} must be at least 1; leave it out for no limit"),
                );
            }
            Some(*value.get_ref())
        };
        let max_length = positive(self, &def.max_length, "max_length");
        let max_wait_secs = positive(self, &def.max_wait_secs, "max_wait_secs");
        let ring_timeout_secs = positive(self, &def.ring_timeout_secs, "ring_timeout_secs");
        let announce_position_every_secs = positive(
            self,
            &def.announce_position_every_secs,
            "announce_position_every_secs",
        );
        let service_level = def.service_level.as_ref().map(|sl| {
            let percent = sl.get_ref().percent.clone();
            if !(1..=100).contains(percent.get_ref()) {
                self.error(
                    file,
                    percent.span(),
                    format!("service level {} % is out of range", percent.get_ref()),
                    "e.g. service_level = { percent = 75, within_secs = 30 }".into(),
                );
            }
            ServiceLevel {
                percent: *percent.get_ref(),
                within_secs: sl.get_ref().within_secs,
            }
        });
        let entry_prompt = def.entry_prompt.as_ref().map(|p| self.prompt(p, file));
        let music_on_hold = def.music_on_hold.as_ref().map(|p| self.prompt(p, file));
        if let Some(every) = &def.announce_position_every_secs {
            let missing: Vec<String> = position_prompts()
                .into_iter()
                .filter(|name| !self.prompts.names.contains(name))
                .collect();
            if !missing.is_empty() {
                let folder = self.prompts.folder.clone();
                self.error(
                    file,
                    every.span(),
                    format!(
                        "missing prompt{} for position announcements: {}",
                        if missing.len() == 1 { "" } else { "s" },
                        missing.join(", ")
                    ),
                    format!(
                        "position announcements play position_prefix, num_<n> (1-20) and \
                         position_suffix from {folder}/; add them or remove \
                         announce_position_every_secs"
                    ),
                );
            }
        }
        let leave_key = def.leave_key.as_ref().and_then(|k| self.key(file, k));
        let overflow = |loader: &mut Self, action: &Option<Spanned<ActionDef>>| {
            action
                .as_ref()
                .and_then(|a| loader.action(a, file, ActionPlace::QueueOverflow))
        };
        let on_leave = overflow(self, &def.on_leave);
        let on_full = overflow(self, &def.on_full);
        let on_max_wait = overflow(self, &def.on_max_wait);
        let on_no_agents = overflow(self, &def.on_no_agents);
        let needs = [
            (
                def.leave_key.as_ref().map(Spanned::span),
                def.on_leave.is_none(),
                "leave_key",
                "on_leave",
            ),
            (
                def.max_length.as_ref().map(Spanned::span),
                def.on_full.is_none(),
                "max_length",
                "on_full",
            ),
            (
                def.max_wait_secs.as_ref().map(Spanned::span),
                def.on_max_wait.is_none(),
                "max_wait_secs",
                "on_max_wait",
            ),
        ];
        for (span, missing, field, action) in needs {
            if let (Some(span), true) = (span, missing) {
                self.error(
                    file,
                    span,
                    format!("queue `{}` has {field} but no {action}", entry.id),
                    format!(
                        "say where callers go, e.g. {action} = {{ announce = [\"queue_full\"], \
                         queue = \"allgemein\" }}"
                    ),
                );
            }
        }
        if def.on_no_agents.is_none() {
            self.diagnostics.push(
                Diagnostic::warning(format!(
                    "queue `{}` has no on_no_agents: with no agent logged in, callers would wait \
                     without end",
                    entry.id
                ))
                .at(entry.at.clone())
                .hint("add on_no_agents = { … } (another queue, voicemail, or an announcement and hangup)"),
            );
        }
        Some(Queue {
            id: entry.id.clone(),
            name: def.name.clone(),
            department: def.department.clone(),
            strategy,
            skill: def
                .skill
                .as_ref()
                .map_or_else(|| entry.id.clone(), |s| s.get_ref().clone()),
            min_level,
            escalation,
            max_length,
            max_wait_secs,
            service_level,
            ring_timeout_secs: ring_timeout_secs.unwrap_or(15),
            wrap_up_secs: def.wrap_up_secs.unwrap_or(0),
            entry_prompt,
            music_on_hold,
            announce_position_every_secs,
            leave_key,
            on_leave,
            on_full,
            on_max_wait,
            on_no_agents,
        })
    }

    pub(super) fn agent(
        &mut self,
        entry: &Entry<file::AgentDef>,
        registrations: &mut BTreeMap<String, Location>,
    ) -> Option<Agent> {
        let def = &entry.def;
        let file = entry.file;
        if let Some(password) = &def.password {
            self.error(
                file,
                password.span(),
                "plaintext passwords are not allowed in the rule files".into(),
                "use password_env = \"ZENTRALE_AGENT_…\" (the password comes from that \
                 environment variable) or password_ha1 = \"<md5(user:realm:password) in hex>\""
                    .into(),
            );
        }
        let mut skills = BTreeMap::new();
        for (skill, level) in &def.skills {
            if !(1..=9).contains(level.get_ref()) {
                self.error(
                    file,
                    level.span(),
                    format!("skill level {} is out of range", level.get_ref()),
                    "skill levels go from 1 (basic) to 9 (expert)".into(),
                );
            }
            skills.insert(skill.clone(), *level.get_ref());
        }
        let reach = match (&def.registration, &def.uri) {
            (Some(user), None) => {
                let password = match (&def.password_env, &def.password_ha1) {
                    (Some(env), None) => {
                        let name = env.get_ref();
                        if name.is_empty()
                            || !name
                                .chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                        {
                            self.error(
                                file,
                                env.span(),
                                format!("`{name}` is not an environment variable name"),
                                "use capitals, digits and _, e.g. ZENTRALE_AGENT1_PASSWORD".into(),
                            );
                        }
                        PasswordSource::Env(name.clone())
                    }
                    (None, Some(ha1)) => {
                        let hash = ha1.get_ref();
                        if hash.len() != 32 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                            self.error(
                                file,
                                ha1.span(),
                                "password_ha1 is not an MD5 digest (32 hex digits)".into(),
                                "HA1 = md5(\"user:realm:password\"), e.g. from `printf \
                                 'agent1:jena:secret' | md5sum`"
                                    .into(),
                            );
                        }
                        PasswordSource::Ha1(hash.to_lowercase())
                    }
                    (Some(_), Some(ha1)) => {
                        self.error(
                            file,
                            ha1.span(),
                            "give either password_env or password_ha1, not both".into(),
                            "keep one of them".into(),
                        );
                        return None;
                    }
                    (None, None) => {
                        self.error(
                            file,
                            user.span(),
                            format!("agent `{}` registers but has no password source", entry.id),
                            "add password_env = \"ZENTRALE_…\" or password_ha1 = \"…\"".into(),
                        );
                        return None;
                    }
                };
                let at = self.at(file, user.span());
                if let Some(first) = registrations.get(user.get_ref()) {
                    self.diagnostics.push(
                        Diagnostic::error(format!(
                            "duplicate registration user `{}`",
                            user.get_ref()
                        ))
                        .at(at)
                        .related(first.clone())
                        .hint(format!(
                            "already used at {first}; each agent's phone registers with its own user"
                        )),
                    );
                } else {
                    registrations.insert(user.get_ref().clone(), at);
                }
                Reach::Registration {
                    user: user.get_ref().clone(),
                    password,
                }
            }
            (None, Some(uri)) => {
                let text = uri.get_ref();
                if !(text.starts_with("sip:") || text.starts_with("sips:")) || !text.contains('@') {
                    self.error(
                        file,
                        uri.span(),
                        format!("`{text}` is not a SIP URI"),
                        "e.g. uri = \"sip:2101@pbx.jena.de\"".into(),
                    );
                }
                if let Some(extra) = def.password_env.as_ref().or(def.password_ha1.as_ref()) {
                    self.error(
                        file,
                        extra.span(),
                        "a password only goes with `registration`".into(),
                        "agents reached by `uri` do not register; remove the password".into(),
                    );
                }
                Reach::Uri(text.clone())
            }
            (Some(_), Some(uri)) => {
                self.error(
                    file,
                    uri.span(),
                    "an agent is reached either by registration or by uri, not both".into(),
                    "keep one of them".into(),
                );
                return None;
            }
            (None, None) => {
                self.diagnostics.push(
                    Diagnostic::error(format!("agent `{}` cannot be reached", entry.id))
                        .at(entry.at.clone())
                        .hint(
                            "add registration = \"<sip user>\" (with password_env) or \
                             uri = \"sip:…\"",
                        ),
                );
                return None;
            }
        };
        Some(Agent {
            id: entry.id.clone(),
            name: def.name.clone(),
            skills,
            reach,
            wrap_up_secs: def.wrap_up_secs,
        })
    }
}
