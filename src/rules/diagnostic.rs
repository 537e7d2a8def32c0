//! Compiler-style messages about the rule files: severity, `file:line:column`, the offending
//! source line with a caret underline, and a hint that says how to fix it.
//!
//! Positions come from the TOML parser as byte ranges; [`SourceFile`] turns them into 1-based
//! lines and columns (columns count characters, so `ü` is one column).

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// How bad a diagnostic is. Only errors make a rule set invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The rule set is refused.
    Error,
    /// The rules load, but something is very likely not what the admin meant
    /// (a route that can never be taken, a queue no agent can serve).
    Warning,
    /// Worth knowing, nothing to fix now (e.g. hours still to be confirmed by the city).
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// A place in a rule file. `line` and `column` are 1-based; `length` is the width of the
/// underline in characters (at least 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub length: usize,
    /// The text of the line, for the excerpt under the message.
    #[serde(skip)]
    pub source_line: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One message about the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Where; `None` for messages about the folder as a whole (e.g. it does not exist).
    pub location: Option<Location>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A second place that explains the first (e.g. the first definition of a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<Location>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, message)
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, message)
    }

    pub fn note(message: impl Into<String>) -> Self {
        Self::new(Severity::Note, message)
    }

    fn new(severity: Severity, message: impl Into<String>) -> Self {
        Self {
            severity,
            message: message.into(),
            location: None,
            hint: None,
            related: None,
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn related(mut self, location: Location) -> Self {
        self.related = Some(location);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Rendered like a compiler message:
///
/// ```text
/// error: unknown queue `fundburo`
///   --> routes.toml:42:9
///    |
/// 42 | queue = "fundburo"
///    |         ^^^^^^^^^^
///    = hint: did you mean `fundbuero`? Queues are defined in queues.toml: …
/// ```
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.severity, self.message)?;
        let gutter = [&self.location, &self.related]
            .into_iter()
            .flatten()
            .map(|l| l.line.to_string().len())
            .max()
            .unwrap_or(1);
        if let Some(location) = &self.location {
            write_excerpt(f, location, "-->", gutter)?;
        }
        if let Some(related) = &self.related {
            write_excerpt(f, related, "::: (see also)", gutter)?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "{:gutter$} = hint: {hint}", "")?;
        }
        Ok(())
    }
}

fn write_excerpt(
    f: &mut fmt::Formatter<'_>,
    location: &Location,
    arrow: &str,
    gutter: usize,
) -> fmt::Result {
    writeln!(f, "{:gutter$}{arrow} {location}", "")?;
    if location.source_line.is_empty() {
        return Ok(());
    }
    writeln!(f, "{:gutter$} |", "")?;
    writeln!(f, "{:>gutter$} | {}", location.line, location.source_line)?;
    writeln!(
        f,
        "{:gutter$} | {:pad$}{}",
        "",
        "",
        "^".repeat(location.length.max(1)),
        pad = location.column.saturating_sub(1)
    )
}

/// All diagnostics as one text, errors first, with a closing tally — e.g. for a refused hot
/// reload's log line.
pub fn render_all(diagnostics: &[Diagnostic]) -> String {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|d| d.severity);
    let errors = sorted.iter().filter(|d| d.is_error()).count();
    let mut text: String = sorted.iter().map(|d| format!("{d}\n")).collect();
    text.push_str(&format!(
        "{errors} error{}, {} other message{}",
        if errors == 1 { "" } else { "s" },
        sorted.len() - errors,
        if sorted.len() - errors == 1 { "" } else { "s" }
    ));
    text
}

/// One rule file's name and text, to turn byte ranges into [`Location`]s.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The location of a byte range (clamped to the text; an empty range underlines one
    /// character). Multi-line ranges are underlined to the end of their first line.
    pub fn location(&self, span: Range<usize>) -> Location {
        let start = floor_char_boundary(&self.text, span.start.min(self.text.len()));
        let end = floor_char_boundary(&self.text, span.end.clamp(start, self.text.len()));
        let line_index = match self.line_starts.binary_search(&start) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line_index];
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let source_line = self.text[line_start..line_end].trim_end_matches('\r');
        let column = self.text[line_start..start].chars().count() + 1;
        let length = self.text[start..end.min(line_end).max(start)]
            .chars()
            .count();
        Location {
            file: self.name.clone(),
            line: line_index + 1,
            column,
            length: length.max(1),
            source_line: source_line.to_string(),
        }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// The closest of `candidates` to `wanted` (for "did you mean …?"), if it is close enough to be
/// a plausible typo.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::levenshtein(&wanted.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_characters() {
        let file = SourceFile::new("x.toml", "a = 1\nname = \"Fundbüro\" # ü\nq = \"z\"\n");
        let offset = file.text.find("\"z\"").unwrap();
        let location = file.location(offset..offset + 3);
        assert_eq!((location.line, location.column, location.length), (3, 5, 3));
        let offset = file.text.find('#').unwrap();
        assert_eq!(file.location(offset..offset + 1).column, 19);
        assert_eq!(file.location(0..0).line, 1);
        let end = file.text.len();
        assert_eq!(file.location(end..end).line, 4);
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["fundbuero", "allgemein", "buergerservice"];
        assert_eq!(did_you_mean("fundburo", names), Some("fundbuero"));
        assert_eq!(did_you_mean("Allgemein", names), Some("allgemein"));
        assert_eq!(did_you_mean("xyz", names), None);
    }

    #[test]
    fn renders_like_a_compiler() {
        let file = SourceFile::new("routes.toml", "[[route]]\nqueue = \"fundburo\"\n");
        let at = file.text.find("\"fundburo\"").unwrap();
        let text = Diagnostic::error("unknown queue `fundburo`")
            .at(file.location(at..at + 10))
            .hint("did you mean `fundbuero`?")
            .to_string();
        assert_eq!(
            text,
            "error: unknown queue `fundburo`\n \
             --> routes.toml:2:9\n  \
             |\n\
             2 | queue = \"fundburo\"\n  \
             |         ^^^^^^^^^^\n  \
             = hint: did you mean `fundbuero`?\n"
        );
    }
}
