//! Rules written in several languages: `description` and `text` per
//! language, checked against the languages the deployment writes.

use super::*;
use crate::grade::Grade;
use crate::language::PhraseKind;

const BILINGUAL: &str = "\
rules:
  - id: pm25-grid
    description: { zh-CN: 细颗粒物（PM2.5）小时浓度, en: hourly PM2.5 }
    metric: pm25
    window: 1h
    aggregate: avg
    group_by: grid
    above: { blue: 75, orange: 150 }
    text:
      zh-CN:
        headline: \"{{ area }}{{ transition }}{{ signal }}\"
        instruction: { orange: 减少户外活动 }
      en:
        headline: \"{{ signal }} {{ transition }} in {{ area }}\"
        summary:
          active: \"{{ event }}: {{ value }}{{ unit }}\"
          resolved: \"{{ event }} is back to normal\"
        instruction: Reduce outdoor activity.
";

fn langs() -> Vec<String> {
    vec!["zh-CN".into(), "en".into()]
}

fn load(name: &str, text: &str, languages: &[String]) -> Result<RuleSet, RulesError> {
    let dir = std::env::temp_dir().join(format!("yujing-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    RuleSet::load_checked(&[path], None, languages)
}

fn problems(name: &str, text: &str) -> Vec<String> {
    load(name, text, &langs())
        .unwrap_err()
        .problems()
        .iter()
        .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
        .collect()
}

#[test]
fn reads_texts_and_descriptions_per_language() {
    let set = load("ok.yaml", BILINGUAL, &langs()).unwrap();
    let rule = &set.rules[0];
    assert_eq!(rule.description, "hourly PM2.5");
    assert_eq!(rule.descriptions["zh-CN"], "细颗粒物（PM2.5）小时浓度");
    let zh = &rule.texts["zh-CN"];
    assert_eq!(zh.instruction.pick(Grade::Blue), None);
    assert_eq!(zh.instruction.pick(Grade::Red), Some("减少户外活动"));
    let en = &rule.texts["en"];
    assert_eq!(
        en.summary.pick(PhraseKind::NoData),
        Some("{{ event }} is back to normal")
    );
    assert_eq!(
        en.instruction.pick(Grade::Blue),
        Some("Reduce outdoor activity.")
    );
    // Without per-language texts, any languages are fine: the defaults apply.
    let plain = "rules:\n  - {id: a, metric: pm25, window: 1h, above: {blue: 1}}\n";
    assert!(load("plain.yaml", plain, &langs()).is_ok());
}

#[test]
fn a_missing_translation_is_refused_where_it_is() {
    let only_zh = BILINGUAL.replace("      en:\n", "      fr:\n");
    let p = problems("missing.yaml", &only_zh);
    assert_eq!(
        p,
        ["9:5: text has no en text; warnings are written in zh-CN, en"],
        "{p:#?}"
    );
    let description = BILINGUAL.replace(", en: hourly PM2.5", "");
    let p = problems("missing-description.yaml", &description);
    assert_eq!(
        p,
        ["3:5: description has no en text; warnings are written in zh-CN, en"]
    );
    // A deployment writing only Chinese accepts the file.
    assert!(load("zh-only.yaml", &only_zh, &["zh-CN".to_owned()]).is_ok());
}

#[test]
fn an_unknown_placeholder_in_a_text_is_refused_where_it_is() {
    let typo = BILINGUAL.replace(
        "{{ signal }} {{ transition }}",
        "{{ signl }} {{ transition }}",
    );
    let p = problems("typo.yaml", &typo);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("14:9: text.en.headline: unknown template variable `signl`"),
        "{p:#?}"
    );
    let grade = BILINGUAL.replace("{ orange: 减少户外活动 }", "{ purple: 减少户外活动 }");
    let p = problems("grade.yaml", &grade);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("text:"), "{p:#?}");
}
