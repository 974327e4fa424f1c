//! `kind: terminal`: readable lines on standard output.

use serde::Deserialize;

use super::TerminalSink;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalConfig {
    /// Force colours on or off (default: on when stdout is a terminal).
    #[serde(default)]
    pub colour: Option<bool>,
}

impl TerminalConfig {
    pub fn build(&self) -> TerminalSink {
        match self.colour {
            Some(c) => TerminalSink::new(Box::new(std::io::stdout()), c),
            None => TerminalSink::stdout(),
        }
    }
}
