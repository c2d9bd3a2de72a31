//! The error of a word that names none of an option's choices: what every `FromStr` of a
//! policy or a mode returns, so that the command line, Python and the ADBC driver refuse the
//! same words with the same message.

use std::fmt;

/// Text that is not one of an option's choices: the option, the text, the choices.
///
/// ```
/// use pgarrow_types::ChoiceError;
///
/// let e = ChoiceError::new("nanoseconds policy", "drop", "error or round");
/// assert_eq!(e.to_string(), "unknown nanoseconds policy \"drop\" (expected error or round)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChoiceError {
    /// What was being chosen (`infinity policy`, `snapshot mode`, ...).
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The words taken, as a sentence (`extreme, null or error`).
    pub expected: &'static str,
}

impl ChoiceError {
    /// `value` is not one of `expected` for `what`.
    pub fn new(what: &'static str, value: impl Into<String>, expected: &'static str) -> Self {
        ChoiceError {
            what,
            value: value.into(),
            expected,
        }
    }
}

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?} (expected {})",
            self.what, self.value, self.expected
        )
    }
}

impl std::error::Error for ChoiceError {}
