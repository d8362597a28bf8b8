//! Diagnostics shared by every parser in this crate.
//!
//! Strict parsers stop at the first [`Severity::Error`] and return it as an error value; lenient
//! parsers keep going and return every [`Diagnostic`] they found beside a best-effort result.

use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is not well formed; a strict parse fails on it.
    Error,
    /// The input is accepted, but it is unusual or breaks a SHOULD (for example LF line endings).
    Warning,
}

/// One finding of a parser or a checker, with where it is and what was expected.
///
/// `line` and `column` are 1-based; `line` 0 means "the document as a whole".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable, dotted identifier such as `sdp.origin.fields` or `jsep.missing-ice-ufrag`.
    pub code: &'static str,
    pub line: usize,
    pub column: usize,
    /// What was wrong, in words.
    pub message: String,
    /// What the parser expected at that place, when there is one thing to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<&'static str>,
}

impl Diagnostic {
    pub fn error(code: &'static str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, code, line, column, message: message.into(), expected: None }
    }

    pub fn warning(code: &'static str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(code, line, column, message) }
    }

    #[must_use]
    pub fn expected(mut self, what: &'static str) -> Self {
        self.expected = Some(what);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line > 0 {
            write!(f, "{sev}[{}] line {}, column {}: {}", self.code, self.line, self.column, self.message)?;
        } else {
            write!(f, "{sev}[{}]: {}", self.code, self.message)?;
        }
        if let Some(e) = self.expected {
            write!(f, " (expected {e})")?;
        }
        Ok(())
    }
}
