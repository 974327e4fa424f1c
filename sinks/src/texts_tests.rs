//! The texts of real warning transitions in both built-in languages.

use yujing_rules::language::Phrase;
use yujing_rules::{Grade, RuleText};

use crate::tests::{messages, messages_of, rule_for_texts};

#[test]
fn each_transition_reads_in_chinese_and_english() {
    let ms = messages(&[Some(100.0), Some(162.0), Some(40.0)]);
    let zh: Vec<_> = ms.iter().map(|m| &m.texts["zh-CN"]).collect();
    let en: Vec<_> = ms.iter().map(|m| &m.texts["en"]).collect();
    // Registry names where it has them, keys (with their level) elsewhere.
    assert_eq!(zh[0].area, "渝北区龙溪街道龙溪1号网格");
    assert_eq!(en[0].area, "grid cq-yb-g01, Longxi Street, Yubei");
    assert_eq!(zh[0].district.as_deref(), Some("渝北区"));
    // Raised.
    assert_eq!(
        zh[0].headline,
        "渝北区龙溪街道龙溪1号网格发布PM2.5（1小时平均值）蓝色预警（IV级）"
    );
    assert_eq!(
        zh[0].summary,
        "渝北区龙溪街道龙溪1号网格PM2.5（1小时平均值）为100µg/m³，超过蓝色预警阈值75µg/m³。"
    );
    assert_eq!(
        en[0].headline,
        "Blue warning (IV) issued for PM2.5 hourly mean in grid cq-yb-g01, Longxi Street, Yubei"
    );
    // No instruction at blue for the environment; from orange on, there is.
    assert_eq!(zh[0].instruction, None);
    // Escalated.
    assert_eq!(zh[1].signal.as_deref(), Some("橙色预警（II级）"));
    assert!(zh[1].headline.contains("升级"), "{}", zh[1].headline);
    assert!(en[1].headline.starts_with("Orange warning (II) upgraded"));
    assert!(
        zh[1]
            .instruction
            .as_deref()
            .unwrap()
            .contains("减少户外活动")
    );
    assert!(
        en[1]
            .instruction
            .as_deref()
            .unwrap()
            .contains("reduce outdoor activity")
    );
    // Resolved: the signal it lifts, no instruction.
    assert_eq!(
        zh[2].summary,
        "渝北区龙溪街道龙溪1号网格PM2.5（1小时平均值）已回落至40µg/m³，橙色预警（II级）解除。"
    );
    assert_eq!(
        en[2].summary,
        "PM2.5 hourly mean in grid cq-yb-g01, Longxi Street, Yubei is back to 40 µg/m³; the orange warning is lifted."
    );
    assert_eq!(en[2].instruction, None);
}

#[test]
fn a_forecast_and_a_silent_group_get_their_own_sentences() {
    let mut r = rule_for_texts();
    r.predict_horizon_ms = Some(3_600_000);
    let m = &messages_of(&r, &[Some(160.0)])[0];
    assert_eq!(
        m.texts["zh-CN"].summary,
        "渝北区龙溪街道龙溪1号网格PM2.5（1小时预测值）预计1小时内达到160µg/m³，超过橙色预警阈值150µg/m³。"
    );
    let r = rule_for_texts();
    let ms = messages_of(&r, &[Some(100.0), None, None]);
    let last = ms.last().unwrap();
    assert_eq!(last.transition, "resolved");
    assert_eq!(
        last.texts["zh-CN"].summary,
        "渝北区龙溪街道龙溪1号网格PM2.5（1小时平均值）窗口内无读数，蓝色预警（IV级）解除。"
    );
}

#[test]
fn a_rules_own_texts_win_over_the_defaults() {
    let mut r = rule_for_texts();
    r.descriptions = [
        ("zh-CN".to_owned(), "细颗粒物小时浓度".to_owned()),
        ("en".to_owned(), "hourly fine particles".to_owned()),
    ]
    .into();
    r.texts.insert(
        "zh-CN".into(),
        RuleText {
            headline: Phrase {
                active: Some("{{ group.district }}{{ event }}{{ grade }}".into()),
                resolved: Some("{{ group.district }}{{ event }}预警{{ transition }}".into()),
                ..Phrase::default()
            },
            instruction: yujing_rules::language::GradedText(
                [(Grade::Blue, "关闭门窗".to_owned())].into(),
            ),
            ..RuleText::default()
        },
    );
    let ms = messages_of(&r, &[Some(100.0), Some(40.0)]);
    let zh = &ms[0].texts["zh-CN"];
    assert_eq!(zh.headline, "渝北区细颗粒物小时浓度蓝色预警");
    assert_eq!(zh.instruction.as_deref(), Some("关闭门窗"));
    assert_eq!(zh.event, "细颗粒物小时浓度");
    // What the rule leaves out comes from the language.
    assert!(
        zh.summary
            .starts_with("渝北区龙溪街道龙溪1号网格细颗粒物小时浓度为100µg/m³")
    );
    assert_eq!(
        ms[1].texts["zh-CN"].headline,
        "渝北区细颗粒物小时浓度预警解除"
    );
    // English keeps its defaults, with its own description.
    assert!(ms[0].texts["en"].headline.contains("hourly fine particles"));
}
