//! Actions (`then`, menu keys, overflows), `[menu.<id>]` and `[[route]]`.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::super::file::{self, ActionDef, TextList};
use super::super::model::{Action, ActionKind, CallerPattern, Conditions, Menu, Route, WaitAbove};
use super::{ActionPlace, Entry, Kind, Loader};

impl Loader<'_> {
    pub(super) fn action(
        &mut self,
        def: &Spanned<ActionDef>,
        file: usize,
        place: ActionPlace,
    ) -> Option<Action> {
        let action = def.get_ref();
        let announce: Vec<String> = action
            .announce
            .iter()
            .map(|p| self.prompt(p, file))
            .collect();
        let mut kinds: Vec<(&str, Range<usize>)> = Vec::new();
        let present = [
            ("menu", action.menu.as_ref().map(Spanned::span)),
            ("topic", action.topic.as_ref().map(Spanned::span)),
            ("queue", action.queue.as_ref().map(Spanned::span)),
            ("hangup", action.hangup.as_ref().map(Spanned::span)),
            ("forward", action.forward.as_ref().map(Spanned::span)),
            ("callback", action.callback.as_ref().map(Spanned::span)),
            ("voicemail", action.voicemail.as_ref().map(Spanned::span)),
        ];
        for (name, span) in present {
            if let Some(span) = span {
                kinds.push((name, span));
            }
        }
        const CHOICES: &str = "menu = \"…\", topic = \"…\", queue = \"…\", hangup = true, forward = \"…\", \
             callback = \"<queue>\" or voicemail = \"<mailbox>\"";
        if kinds.is_empty() {
            self.error(
                file,
                def.span(),
                "this action does not say what happens to the call".into(),
                format!(
                    "add exactly one of {CHOICES} (announce = [\"…\"] only plays prompts first)"
                ),
            );
            return None;
        }
        if kinds.len() > 1 {
            let names: Vec<&str> = kinds.iter().map(|(n, _)| *n).collect();
            self.error(
                file,
                kinds[1].1.clone(),
                format!(
                    "an action does one thing, this one has {}",
                    names.join(" and ")
                ),
                format!("keep exactly one of {CHOICES}"),
            );
            return None;
        }
        let (name, span) = kinds[0].clone();
        if place == ActionPlace::QueueOverflow && (name == "menu" || name == "topic") {
            self.error(
                file,
                span,
                format!("a queue's overflow cannot use `{name}`"),
                "a caller leaving a queue goes to another queue, a callback, voicemail, a \
                 forward or hangs up"
                    .into(),
            );
            return None;
        }
        if let Some(priority) = &action.priority
            && name != "queue"
        {
            self.error(
                file,
                priority.span(),
                "`priority` only goes with `queue`".into(),
                "remove priority, or use queue = \"…\" in this action".into(),
            );
        }
        let kind = match name {
            "menu" => {
                let menu = action.menu.as_ref()?;
                self.reference(Kind::Menu, menu, file)
                    .then(|| ActionKind::Menu(menu.get_ref().clone()))?
            }
            "topic" => {
                let topic = action.topic.as_ref()?;
                self.reference(Kind::Topic, topic, file)
                    .then(|| ActionKind::Topic(topic.get_ref().clone()))?
            }
            "queue" => {
                let queue = action.queue.as_ref()?;
                let priority = action.priority.as_ref().map_or(0, |p| *p.get_ref());
                if priority > 9 {
                    let span = action.priority.as_ref().map(Spanned::span).unwrap_or(span);
                    self.error(
                        file,
                        span,
                        format!("priority {priority} is out of range"),
                        "priority is 0 (normal) … 9 (served first)".into(),
                    );
                }
                self.reference(Kind::Queue, queue, file)
                    .then(|| ActionKind::Queue {
                        queue: queue.get_ref().clone(),
                        priority,
                    })?
            }
            "hangup" => {
                if !action.hangup.as_ref().is_some_and(|h| *h.get_ref()) {
                    self.error(
                        file,
                        span,
                        "`hangup = false` does nothing".into(),
                        "write hangup = true to end the call, or choose another action".into(),
                    );
                    return None;
                }
                ActionKind::Hangup
            }
            "forward" => {
                let target = action.forward.as_ref()?;
                let text = target.get_ref();
                let uri = text.starts_with("sip:") || text.starts_with("sips:");
                let phone = !text.is_empty()
                    && text
                        .trim_start_matches('+')
                        .chars()
                        .all(|c| c.is_ascii_digit());
                if !uri && !phone {
                    self.error(
                        file,
                        target.span(),
                        format!("`{text}` is neither a SIP URI nor a phone number"),
                        "write forward = \"sip:fundbuero@pbx.jena.de\" or forward = \"+493641490\""
                            .into(),
                    );
                    return None;
                }
                ActionKind::Forward(text.clone())
            }
            "callback" => {
                let queue = action.callback.as_ref()?;
                self.reference(Kind::Queue, queue, file)
                    .then(|| ActionKind::Callback(queue.get_ref().clone()))?
            }
            _ => {
                let mailbox = action.voicemail.as_ref()?;
                if mailbox.get_ref().trim().is_empty() {
                    self.error(
                        file,
                        mailbox.span(),
                        "empty voicemail mailbox name".into(),
                        "name the mailbox the message goes to, e.g. voicemail = \"fundbuero\""
                            .into(),
                    );
                    return None;
                }
                ActionKind::Voicemail(mailbox.get_ref().clone())
            }
        };
        Some(Action { announce, kind })
    }

    pub(super) fn menu(&mut self, entry: &Entry<file::MenuDef>) -> Option<Menu> {
        let def = &entry.def;
        let file = entry.file;
        let greeting = def.greeting.as_ref().map(|p| self.prompt(p, file));
        let prompts: Vec<String> = def
            .prompt
            .get_ref()
            .0
            .iter()
            .map(|name| self.prompt(&Spanned::new(def.prompt.span(), name.clone()), file))
            .collect();
        if prompts.is_empty() {
            self.error(
                file,
                def.prompt.span(),
                format!("menu `{}` has no prompt", entry.id),
                "name the prompt(s) that present the options, e.g. prompt = \"menu\"".into(),
            );
        }
        let invalid_prompt = def.invalid_prompt.as_ref().map(|p| self.prompt(p, file));
        let no_input_prompt = def.no_input_prompt.as_ref().map(|p| self.prompt(p, file));
        let timeout_secs = self.bounded(file, def.timeout_secs.as_ref(), 5, 1..=60, "timeout_secs");
        let attempts = self.bounded(file, def.attempts.as_ref(), 3, 1..=10, "attempts");
        if def.keys.get_ref().is_empty() {
            self.error(
                file,
                def.keys.span(),
                format!("menu `{}` has no keys", entry.id),
                "add options like `1 = { topic = \"buergerservice\" }` under [menu.<id>.keys]"
                    .into(),
            );
        }
        let mut keys = BTreeMap::new();
        for (key, action) in def.keys.get_ref() {
            let mut chars = key.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                self.error(
                    file,
                    action.span(),
                    format!("menu key `{key}` is not a single key"),
                    "a menu key is one of 0-9, \"*\" or \"#\"".into(),
                );
                continue;
            };
            if !(c.is_ascii_digit() || c == '*' || c == '#') {
                self.error(
                    file,
                    action.span(),
                    format!("menu key `{key}` is not on a phone keypad"),
                    "a menu key is one of 0-9, \"*\" or \"#\" (quote * and #)".into(),
                );
                continue;
            }
            if let Some(action) = self.action(action, file, ActionPlace::MenuKey) {
                keys.insert(c, action);
            }
        }
        let on_failure = self.action(&def.on_failure, file, ActionPlace::MenuKey);
        Some(Menu {
            id: entry.id.clone(),
            name: def.name.clone().unwrap_or_else(|| entry.id.clone()),
            greeting,
            prompts,
            invalid_prompt,
            no_input_prompt,
            timeout_secs,
            attempts,
            keys,
            on_failure: on_failure?,
        })
    }

    pub(super) fn route(&mut self, entry: &Entry<file::RouteDef>) -> Option<Route> {
        let def = &entry.def;
        let file = entry.file;
        let w = &def.when;
        let mut ok = true;
        let mut list = |loader: &mut Self, names: &Option<Spanned<TextList>>, kind: Kind| {
            let names = names.as_ref()?;
            if names.get_ref().0.is_empty() {
                loader.error(
                    file,
                    names.span(),
                    format!("empty {} list never matches", kind.noun()),
                    format!("name at least one {}, or remove the condition", kind.noun()),
                );
                ok = false;
            }
            for name in &names.get_ref().0 {
                let spanned = Spanned::new(names.span(), name.clone());
                ok &= loader.reference(kind, &spanned, file);
            }
            Some(names.get_ref().0.clone())
        };
        let number = list(self, &w.number, Kind::Number);
        let topic = list(self, &w.topic, Kind::Topic);
        let mut single = |loader: &mut Self, name: &Option<Spanned<String>>, kind: Kind| {
            let name = name.as_ref()?;
            ok &= loader.reference(kind, name, file);
            Some(name.get_ref().clone())
        };
        let open = single(self, &w.open, Kind::Calendar);
        let closed = single(self, &w.closed, Kind::Calendar);
        let holiday = single(self, &w.holiday, Kind::Calendar);
        let closure = single(self, &w.closure, Kind::Calendar);
        let no_agents = single(self, &w.no_agents, Kind::Queue);
        let queue_full = single(self, &w.queue_full, Kind::Queue);
        let wait_above = w.wait_above.as_ref().map(|wait| {
            let wait = wait.get_ref();
            ok &= self.reference(Kind::Queue, &wait.queue, file);
            WaitAbove {
                queue: wait.queue.get_ref().clone(),
                secs: wait.secs,
            }
        });
        let caller = w.caller.as_ref().map(|patterns| {
            patterns
                .get_ref()
                .0
                .iter()
                .map(|pattern| {
                    let valid = pattern == "anonymous"
                        || (!pattern.is_empty()
                            && pattern
                                .chars()
                                .all(|c| c.is_ascii_digit() || "+*?#".contains(c)));
                    if !valid {
                        self.error(
                            file,
                            patterns.span(),
                            format!("bad caller pattern `{pattern}`"),
                            "digits and + with ? (one digit) and * (any digits), e.g. \
                             \"+493641*\", or \"anonymous\" for withheld numbers"
                                .into(),
                        );
                        ok = false;
                    }
                    CallerPattern(pattern.clone())
                })
                .collect()
        });
        let then = self.action(&def.then, file, ActionPlace::Route);
        let at = &entry.at;
        Some(Route {
            id: entry.id.clone(),
            description: def.description.clone(),
            defined_at: format!("{}:{}", at.file, at.line),
            location: at.clone(),
            when: Conditions {
                number,
                caller,
                topic,
                open,
                closed,
                holiday,
                closure,
                no_agents,
                queue_full,
                wait_above,
            },
            then: then.filter(|_| ok)?,
        })
    }
}
