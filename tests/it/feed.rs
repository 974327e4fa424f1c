//! The public CAP feed through `yujing run` on the mock cluster: parsed by
//! a real Atom parser (the `atom_syndication` crate, not the code that
//! writes it), every linked CAP document fetched and validated against
//! the CAP 1.2 schema, `ETag` / `If-None-Match`, filters, and a resolved
//! warning's cancel.

use atom_syndication::Feed;
use reqwest::StatusCode;

use crate::support::city::City;
use crate::support::{assert_valid_cap, run_until, wait_until};

const FEED: &str = "feed:
  categories: [env]
  min_grade: yellow
  title: { zh-CN: 重庆市生态环境预警, en: Chongqing environmental warnings }
  cap: { sender: yujing@eeb.cq.example, sender_name: { zh-CN: 重庆市生态环境局, en: Chongqing EEB }, issuer_code: \"12345600\" }
";

async fn feed(city: &City, query: &str) -> Feed {
    let text = city.get(&format!("/feed/cap.atom{query}")).await;
    Feed::read_from(text.as_bytes()).unwrap_or_else(|e| panic!("not Atom ({e}):\n{text}"))
}

/// Fetch every linked CAP document; each must validate.
async fn documents(feed: &Feed) -> Vec<String> {
    let mut out = Vec::new();
    for entry in feed.entries() {
        let link = &entry.links()[0];
        assert_eq!(link.mime_type(), Some("application/cap+xml"));
        let doc = reqwest::get(link.href())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_valid_cap(&doc);
        out.push(doc);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_lists_current_cap_messages_for_aggregators() {
    let city = City::new(2);
    let config = city.config_with(FEED, "  - kind: kafka\n    topic: alerts\n");
    run_until(&city, &config, async {
        // s000 blue (below the feed's yellow), s001 orange.
        city.produce(&[(0, vec![100.0, 160.0]), (1, vec![100.0, 160.0])])
            .await;
        wait_until("one entry in the feed", async || {
            feed(&city, "").await.entries().len() == 1
        })
        .await;
        let f = feed(&city, "").await;
        assert_eq!(f.title().as_str(), "重庆市生态环境预警");
        let entry = &f.entries()[0];
        assert!(
            entry.title().contains("橙色预警（II级）"),
            "{}",
            entry.title().as_str()
        );
        // `updated` = the message's sent: the end of the window it closed.
        assert_eq!(
            entry.updated().timestamp_millis(),
            crate::support::city::T0 + 60_000
        );
        let docs = documents(&f).await;
        assert!(docs[0].contains("<msgType>Alert</msgType>"));
        assert!(docs[0].contains("<language>zh-CN</language>"));
        assert!(docs[0].contains("<language>en</language>"));
        assert!(docs[0].contains("<senderName>重庆市生态环境局</senderName>"));

        // Pollers: an unchanged feed costs a 304; filters narrow it.
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/feed/cap.atom", city.metrics_port());
        let first = client.get(&url).send().await.unwrap();
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let again = client
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(feed(&city, "?min_grade=red").await.entries().is_empty());
        assert!(feed(&city, "?category=met").await.entries().is_empty());
        assert_eq!(
            feed(&city, "?category=env&min_grade=orange")
                .await
                .entries()
                .len(),
            1
        );
        let bad = client
            .get(format!("{url}?min_grade=purple"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let missing = client
            .get(url.replace("cap.atom", "cap/000.xml"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        // Clean air: the warning's cancel replaces it, listed as such.
        city.produce(&[(2, vec![40.0, 40.0]), (3, vec![40.0, 40.0])])
            .await;
        wait_until("the cancel in the feed", async || {
            let f = feed(&city, "").await;
            f.entries().len() == 1
                && f.entries()[0]
                    .categories()
                    .iter()
                    .any(|c| c.term() == "cancelled")
        })
        .await;
        let f = feed(&city, "").await;
        let docs = documents(&f).await;
        assert!(docs[0].contains("<msgType>Cancel</msgType>"), "{}", docs[0]);
        assert!(docs[0].contains("<references>"));
        let changed = client
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(
            changed.status(),
            StatusCode::OK,
            "a new ETag after a change"
        );
    })
    .await;
}
