//! Reading a rules folder: every `*.toml` file is parsed on its own (so one broken file does not
//! hide the errors of the others), each `[section.<id>]` entry is read on its own (so one bad
//! queue does not hide the errors of the next), then every reference, time and range is checked
//! and the rules are turned into the [`super::model`] types. All diagnostics are collected.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostic::{Diagnostic, Location, SourceFile, did_you_mean};
use super::file;
use super::model::*;
use super::{RuleSet, Version, lint};

mod calendars;
mod routes;
mod staff;

/// Prompt names that exist as `prompts/<name>.wav` in the rules folder.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    /// How to name the folder in hints, e.g. `routing-rules/prompts`.
    pub folder: String,
    pub names: BTreeSet<String>,
}

/// Reads and validates the rules in `dir` (its `*.toml` files and `prompts/*.wav` names).
/// `Ok` carries the rule set with its warnings and notes ([`RuleSet::warnings`]); `Err` every
/// diagnostic, errors first.
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<Diagnostic>> {
    load_dir_at(dir, Utc::now())
}

/// [`load_dir`] with the load time given (for tests).
pub fn load_dir_at(dir: &Path, loaded_at: DateTime<Utc>) -> Result<RuleSet, Vec<Diagnostic>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        vec![
            Diagnostic::error(format!(
                "cannot read the rules folder {}: {e}",
                dir.display()
            ))
            .hint("give the folder that holds numbers.toml, menus.toml, routes.toml …"),
        ]
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    names.sort();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let path = dir.join(&name);
        match fs::read_to_string(&path) {
            Ok(text) => sources.push((path.display().to_string(), text)),
            Err(e) => errors.push(
                Diagnostic::error(format!("cannot read {}: {e}", path.display()))
                    .hint("rule files must be readable UTF-8 text"),
            ),
        }
    }
    if sources.is_empty() && errors.is_empty() {
        errors.push(
            Diagnostic::error(format!("no rule files (*.toml) in {}", dir.display()))
                .hint("the shipped Jena rules are in the routing-rules/ folder of the source"),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let prompt_dir = dir.join("prompts");
    let prompts = Prompts {
        folder: prompt_dir.display().to_string(),
        names: fs::read_dir(&prompt_dir)
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .filter_map(|name| name.strip_suffix(".wav").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    load_sources(sources, &prompts, loaded_at)
}

/// Validates rules given as `(file name, text)` pairs: the pure core of [`load_dir`].
pub fn load_sources(
    sources: Vec<(String, String)>,
    prompts: &Prompts,
    loaded_at: DateTime<Utc>,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut sources = sources;
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    let version = Version {
        hash: content_hash(&sources).into(),
        loaded_at,
        files: sources.len(),
    };
    let files: Vec<SourceFile> = sources
        .into_iter()
        .map(|(name, text)| SourceFile::new(name, text))
        .collect();
    let mut loader = Loader {
        files: &files,
        diagnostics: Vec::new(),
        prompts,
        ids: Ids::default(),
    };
    let parsed = loader.parse_all();
    let rules = loader.build(parsed, version);
    let mut diagnostics = loader.diagnostics;
    if let Some(rules) = &rules {
        lint::lint(rules, &mut diagnostics);
    }
    diagnostics.sort_by_key(|d| d.severity);
    match rules {
        Some(mut rules) if !diagnostics.iter().any(Diagnostic::is_error) => {
            rules.warnings = diagnostics;
            Ok(rules)
        }
        _ => Err(diagnostics),
    }
}

/// FNV-1a (64 bit) over each file's name and content, files sorted by name: a stable version id
/// that changes whenever any rule file does (prompt audio is not included).
pub fn content_hash(sources: &[(String, String)]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, text) in sources {
        let base = Path::new(name)
            .file_name()
            .map_or(name.as_str(), |n| n.to_str().unwrap_or(name));
        feed(base.as_bytes());
        feed(&[0xff]);
        feed(&(text.len() as u64).to_le_bytes());
        feed(text.as_bytes());
    }
    format!("{hash:016x}")
}

/// One `[section.<id>]` entry (or one `[[route]]`) as read, with where it is.
struct Entry<T> {
    id: String,
    file: usize,
    at: Location,
    def: T,
}

#[derive(Default)]
struct Parsed {
    numbers: Vec<Entry<file::NumberDef>>,
    menus: Vec<Entry<file::MenuDef>>,
    topics: Vec<Entry<file::TopicDef>>,
    queues: Vec<Entry<file::QueueDef>>,
    agents: Vec<Entry<file::AgentDef>>,
    calendars: Vec<Entry<file::CalendarDef>>,
    routes: Vec<Entry<file::RouteDef>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Menu,
    Topic,
    Queue,
    Agent,
    Calendar,
    Route,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Menu => "menu",
            Kind::Topic => "topic",
            Kind::Queue => "queue",
            Kind::Agent => "agent",
            Kind::Calendar => "calendar",
            Kind::Route => "route",
        }
    }

    fn defined_in(self) -> &'static str {
        match self {
            Kind::Number => "numbers.toml as [number.<id>]",
            Kind::Menu => "menus.toml as [menu.<id>]",
            Kind::Topic => "topics.toml as [topic.<id>]",
            Kind::Queue => "queues.toml as [queue.<id>]",
            Kind::Agent => "agents.toml as [agent.<id>]",
            Kind::Calendar => "calendars.toml as [calendar.<id>]",
            Kind::Route => "routes.toml as [[route]] with id = \"…\"",
        }
    }
}

#[derive(Default)]
struct Ids {
    by_kind: BTreeMap<&'static str, BTreeMap<String, Location>>,
}

impl Ids {
    fn of(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.by_kind
            .get(kind.noun())
            .into_iter()
            .flat_map(|ids| ids.keys().map(String::as_str))
    }

    fn contains(&self, kind: Kind, id: &str) -> bool {
        self.by_kind
            .get(kind.noun())
            .is_some_and(|ids| ids.contains_key(id))
    }
}

/// Where an action is written: not every action makes sense everywhere.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ActionPlace {
    Route,
    MenuKey,
    QueueOverflow,
}

struct Loader<'a> {
    files: &'a [SourceFile],
    diagnostics: Vec<Diagnostic>,
    prompts: &'a Prompts,
    ids: Ids,
}

impl Loader<'_> {
    fn at(&self, file: usize, span: Range<usize>) -> Location {
        self.files[file].location(span)
    }

    fn error(&mut self, file: usize, span: Range<usize>, message: String, hint: String) {
        let at = self.at(file, span);
        self.diagnostics
            .push(Diagnostic::error(message).at(at).hint(hint));
    }

    // ---- phase 1: TOML → file structs ------------------------------------------------------

    fn parse_all(&mut self) -> Parsed {
        let mut parsed = Parsed::default();
        for index in 0..self.files.len() {
            self.parse_file(index, &mut parsed);
        }
        parsed
    }

    fn parse_file(&mut self, file: usize, parsed: &mut Parsed) {
        let text = self.files[file].text.as_str();
        let (root, errors) = DeTable::parse_recoverable(text);
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            self.error(
                file,
                span,
                format!("TOML syntax error: {}", error.message().trim_end()),
                "check this line: strings need \"double quotes\", tables [brackets], and every \
                 key `= value`"
                    .into(),
            );
        }
        for (key, value) in root.get_ref() {
            let section = key.get_ref().as_ref();
            match section {
                "route" => {
                    let Some(items) = value.get_ref().as_array() else {
                        self.error(
                            file,
                            key.span(),
                            "`route` must be a list of tables".into(),
                            "write each route as [[route]] (double brackets): they are checked \
                             in order"
                                .into(),
                        );
                        continue;
                    };
                    for item in items.iter() {
                        if let Some(def) = self.entry::<file::RouteDef>(file, item, "[[route]]") {
                            let id = def.id.get_ref().clone();
                            let at = self.at(file, def.id.span());
                            parsed.routes.push(Entry { id, file, at, def });
                        }
                    }
                }
                "number" => self.section(file, key, value, Kind::Number, &mut parsed.numbers),
                "menu" => self.section(file, key, value, Kind::Menu, &mut parsed.menus),
                "topic" => self.section(file, key, value, Kind::Topic, &mut parsed.topics),
                "queue" => self.section(file, key, value, Kind::Queue, &mut parsed.queues),
                "agent" => self.section(file, key, value, Kind::Agent, &mut parsed.agents),
                "calendar" => self.section(file, key, value, Kind::Calendar, &mut parsed.calendars),
                other => {
                    let known = file::SECTIONS.iter().map(|(name, _)| *name);
                    let guess = did_you_mean(other, known)
                        .map(|g| format!("did you mean `{g}`? "))
                        .unwrap_or_default();
                    let list: Vec<&str> = file::SECTIONS.iter().map(|(_, what)| *what).collect();
                    self.error(
                        file,
                        key.span(),
                        format!("unknown section `{other}`"),
                        format!("{guess}a rule file may hold: {}", list.join(", ")),
                    );
                }
            }
        }
    }

    fn section<T: DeserializeOwned>(
        &mut self,
        file: usize,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
        kind: Kind,
        out: &mut Vec<Entry<T>>,
    ) {
        let Some(table) = value.get_ref().as_table() else {
            self.error(
                file,
                key.span(),
                format!("`{}` must be a table of named entries", kind.noun()),
                format!(
                    "write [{}.<id>] with the entry's fields below it",
                    kind.noun()
                ),
            );
            return;
        };
        for (id, entry) in table.iter() {
            let what = format!("[{}.{}]", kind.noun(), id.get_ref());
            if let Some(def) = self.entry::<T>(file, entry, &what) {
                let at = self.at(file, id.span());
                out.push(Entry {
                    id: id.get_ref().to_string(),
                    file,
                    at,
                    def,
                });
            }
        }
    }

    fn entry<T: DeserializeOwned>(
        &mut self,
        file: usize,
        value: &Spanned<DeValue<'_>>,
        what: &str,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(def) => Some(def),
            Err(error) => {
                let message = error.message().trim_end().to_string();
                let hint = if message.starts_with("unknown field") {
                    format!(
                        "{what} does not have this field; routing-rules/README.md lists every \
                         field with examples"
                    )
                } else if message.starts_with("missing field") {
                    format!("{what} needs this field; see routing-rules/README.md")
                } else {
                    format!("see the fields of {what} in routing-rules/README.md")
                };
                let span = error.span().unwrap_or_else(|| value.span());
                self.error(file, span, format!("in {what}: {message}"), hint);
                None
            }
        }
    }

    // ---- phase 2: ids, references, times → model ---------------------------------------------

    fn register<T>(&mut self, kind: Kind, entries: &[Entry<T>]) {
        for entry in entries {
            let ids = self.ids.by_kind.entry(kind.noun()).or_default();
            if let Some(first) = ids.get(&entry.id) {
                let first = first.clone();
                self.diagnostics.push(
                    Diagnostic::error(format!("duplicate {} id `{}`", kind.noun(), entry.id))
                        .at(entry.at.clone())
                        .related(first.clone())
                        .hint(format!(
                            "`{}` is already defined at {first}; give each {} its own id",
                            entry.id,
                            kind.noun()
                        )),
                );
            } else {
                ids.insert(entry.id.clone(), entry.at.clone());
            }
        }
    }

    fn build(&mut self, parsed: Parsed, version: Version) -> Option<RuleSet> {
        self.register(Kind::Number, &parsed.numbers);
        self.register(Kind::Menu, &parsed.menus);
        self.register(Kind::Topic, &parsed.topics);
        self.register(Kind::Queue, &parsed.queues);
        self.register(Kind::Agent, &parsed.agents);
        self.register(Kind::Calendar, &parsed.calendars);
        self.register(Kind::Route, &parsed.routes);

        let mut rules = RuleSet {
            version,
            numbers: BTreeMap::new(),
            menus: BTreeMap::new(),
            topics: BTreeMap::new(),
            queues: BTreeMap::new(),
            agents: BTreeMap::new(),
            calendars: BTreeMap::new(),
            routes: Vec::new(),
            warnings: Vec::new(),
            dialled: BTreeMap::new(),
            definitions: self
                .ids
                .by_kind
                .iter()
                .flat_map(|(kind, ids)| {
                    ids.iter()
                        .map(move |(id, at)| (format!("{kind}.{id}"), at.clone()))
                })
                .collect(),
        };
        let mut dialled_at: BTreeMap<String, Location> = BTreeMap::new();
        for entry in &parsed.numbers {
            let number = self.number(entry, &mut dialled_at);
            for dialled in &number.dialled {
                rules
                    .dialled
                    .entry(dialled.clone())
                    .or_insert_with(|| number.id.clone());
            }
            rules.numbers.entry(entry.id.clone()).or_insert(number);
        }
        for entry in &parsed.topics {
            rules.topics.entry(entry.id.clone()).or_insert(Topic {
                id: entry.id.clone(),
                name: entry.def.name.clone(),
                description: entry.def.description.clone(),
            });
        }
        for entry in &parsed.menus {
            if let Some(menu) = self.menu(entry) {
                rules.menus.entry(entry.id.clone()).or_insert(menu);
            }
        }
        for entry in &parsed.queues {
            if let Some(queue) = self.queue(entry) {
                rules.queues.entry(entry.id.clone()).or_insert(queue);
            }
        }
        let mut registrations: BTreeMap<String, Location> = BTreeMap::new();
        for entry in &parsed.agents {
            if let Some(agent) = self.agent(entry, &mut registrations) {
                rules.agents.entry(entry.id.clone()).or_insert(agent);
            }
        }
        for entry in &parsed.calendars {
            if let Some(calendar) = self.calendar(entry) {
                rules.calendars.entry(entry.id.clone()).or_insert(calendar);
            }
        }
        for entry in &parsed.routes {
            if let Some(route) = self.route(entry) {
                rules.routes.push(route);
            }
        }
        Some(rules)
    }

    fn reference(&mut self, kind: Kind, name: &Spanned<String>, file: usize) -> bool {
        let id = name.get_ref();
        if self.ids.contains(kind, id) {
            return true;
        }
        let known: Vec<&str> = self.ids.of(kind).collect();
        let guess = did_you_mean(id, known.iter().copied())
            .map(|g| format!("did you mean `{g}`? "))
            .unwrap_or_default();
        let list = if known.is_empty() {
            "none are defined yet".to_string()
        } else {
            format!("defined: {}", known.join(", "))
        };
        let message = format!("unknown {} `{id}`", kind.noun());
        let hint = format!(
            "{guess}{}s are defined in {} ({list})",
            kind.noun(),
            kind.defined_in()
        );
        self.error(file, name.span(), message, hint);
        false
    }

    fn prompt(&mut self, name: &Spanned<String>, file: usize) -> String {
        let id = name.get_ref();
        if !self.prompts.names.contains(id) {
            let guess = did_you_mean(id, self.prompts.names.iter().map(String::as_str))
                .map(|g| format!("did you mean `{g}`? "))
                .unwrap_or_default();
            let folder = self.prompts.folder.clone();
            self.error(
                file,
                name.span(),
                format!("missing prompt `{id}`: there is no file {folder}/{id}.wav"),
                format!(
                    "{guess}prompts are WAV files (8 kHz, mono, 16-bit) in {folder}/, named by \
                     the prompt without .wav; add the file or use an existing prompt"
                ),
            );
        }
        id.clone()
    }

    fn number(
        &mut self,
        entry: &Entry<file::NumberDef>,
        dialled_at: &mut BTreeMap<String, Location>,
    ) -> Number {
        let def = &entry.def;
        if def.dialled.get_ref().is_empty() {
            self.error(
                entry.file,
                def.dialled.span(),
                format!("number `{}` lists no dialled numbers", entry.id),
                "list the numbers callers dial, e.g. dialled = [\"490\", \"+493641490\"]".into(),
            );
        }
        let mut dialled = Vec::new();
        for number in def.dialled.get_ref() {
            let text = number.get_ref();
            let valid = !text.is_empty()
                && text.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_digit() || c == '*' || c == '#' || (i == 0 && c == '+')
                });
            if !valid {
                self.error(
                    entry.file,
                    number.span(),
                    format!("`{text}` is not a dialled number"),
                    "digits, * and # only, optionally starting with +, e.g. \"03641490\"".into(),
                );
                continue;
            }
            let at = self.at(entry.file, number.span());
            if let Some(first) = dialled_at.get(text) {
                self.diagnostics.push(
                    Diagnostic::error(format!("duplicate dialled number `{text}`"))
                        .at(at)
                        .related(first.clone())
                        .hint(format!(
                            "`{text}` is already listed at {first}; a dialled number belongs to \
                             one [number.<id>]"
                        )),
                );
                continue;
            }
            dialled_at.insert(text.clone(), at);
            dialled.push(text.clone());
        }
        Number {
            id: entry.id.clone(),
            name: def.name.clone().unwrap_or_else(|| entry.id.clone()),
            dialled,
        }
    }

    fn bounded(
        &mut self,
        file: usize,
        value: Option<&Spanned<u32>>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
        field: &str,
    ) -> u32 {
        let Some(value) = value else { return default };
        let number = *value.get_ref();
        if !range.contains(&number) {
            self.error(
                file,
                value.span(),
                format!("{field} = {number} is out of range"),
                format!(
                    "{field} must be between {} and {} (default {default})",
                    range.start(),
                    range.end()
                ),
            );
            return default;
        }
        number
    }

    fn key(&mut self, file: usize, key: &Spanned<String>) -> Option<char> {
        let mut chars = key.get_ref().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
            _ => {
                self.error(
                    file,
                    key.span(),
                    format!("`{}` is not a single phone key", key.get_ref()),
                    "one of 0-9, \"*\" or \"#\"".into(),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_is_stable_and_sensitive() {
        let a = vec![("a.toml".to_string(), "x = 1".to_string())];
        let b = vec![("a.toml".to_string(), "x = 2".to_string())];
        assert_eq!(content_hash(&a), content_hash(&a.clone()));
        assert_ne!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&[]), "cbf29ce484222325");
    }
}
