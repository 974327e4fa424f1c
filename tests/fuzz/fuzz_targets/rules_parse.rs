//! Any text as a rules file: the loader returns rules or located
//! problems, never panics; a problem's line is within the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = yujing_rules::RuleSet::parse(std::path::Path::new("rules.yaml"), text) {
        let _ = e.to_string();
    }
});
