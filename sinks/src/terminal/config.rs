//! `kind: terminal`: readable lines on standard output.

use serde::Deserialize;

use super::TerminalSink;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalConfig {
    /// Force colours on or off (default: on when stdout is a terminal).
    #[serde(default)]
    pub colour: Option<bool>,
    /// Language of the lines (`zh-CN`, `en`, …; default from the
    /// environment: `LC_ALL`, `LC_MESSAGES`, `LANG`).
    #[serde(default)]
    pub language: Option<String>,
}

impl TerminalConfig {
    pub fn build(&self) -> TerminalSink {
        let sink = match self.colour {
            Some(c) => TerminalSink::new(Box::new(std::io::stdout()), c),
            None => TerminalSink::stdout(),
        };
        sink.with_language(self.language.clone().unwrap_or_else(language_from_env))
    }
}

/// `zh-CN` when the locale is Chinese (`zh_CN.UTF-8`, `zh`), else `en`.
pub fn language_from_env() -> String {
    let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    if locale.starts_with("zh") {
        "zh-CN".to_owned()
    } else {
        "en".to_owned()
    }
}
