//! The board in a real browser (Debian's Chromium, headless, driven by
//! `tests/browser/board.mjs` with playwright-core) during a `yujing run` on
//! the mock cluster: the page shows the warnings on the alert topic, live;
//! a warned grid has its grade's colour; a read-only page has no buttons;
//! a signed-in unit acts on its own warnings only, and its click is a
//! response message on Kafka; a grid's cell opens its last 24 hours.
//! Screenshots go to `docs/`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{City, external_program, read_topic, run_while};

/// The node process driving Chromium, one JSON line each way.
struct Browser {
    child: Child,
    io: Arc<Mutex<(ChildStdin, BufReader<ChildStdout>)>>,
}

impl Browser {
    /// None when the machine has no Chromium or the npm packages are not
    /// installed (`.ci/run` installs both).
    fn start() -> Option<Self> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        if !external_program("node") || !external_program("chromium") {
            return None;
        }
        assert!(
            dir.join("node_modules/playwright-core").exists(),
            "run `npm ci` in tests/browser (.ci/run does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("board.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let io = (
            child.stdin.take().unwrap(),
            BufReader::new(child.stdout.take().unwrap()),
        );
        Some(Browser {
            child,
            io: Arc::new(Mutex::new(io)),
        })
    }

    async fn ask(&self, command: Value) -> Value {
        let io = self.io.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let mut io = io.lock().unwrap();
            writeln!(io.0, "{command}").unwrap();
            let mut line = String::new();
            io.1.read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let v: Value = serde_json::from_str(&answer).unwrap_or(Value::String(answer));
        assert_eq!(v["ok"], true, "browser: {v}");
        v
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(mut io) = self.io.lock() {
            let _ = writeln!(io.0, "{}", json!({"cmd": "close"}));
        }
        let _ = self.child.wait();
    }
}

const UNITS: &str = "\
units:
  - { id: grid-g1, level: grid, areas: [g1], token_env: YUJING_TEST_BOARD_G1 }
  - { id: jiangbei, level: district, areas: [\"500105\"] }
  - { id: yubei, level: district, areas: [\"500112\"] }
  - { id: city, level: city }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_the_warnings_live_and_a_unit_acts_on_its_own() {
    let Some(browser) = Browser::start() else {
        return;
    };
    // SAFETY of the test: read only by this test's run.
    unsafe { std::env::set_var("YUJING_TEST_BOARD_G1", "board-g1") };
    let city = City::new(3);
    // Twelve stations over two districts, spread out, with the names the
    // city uses (s000..s002 are the ones that warn).
    let mut sensors = "sensor_id,kind,district,district_code,street,grid,lat,lon\n".to_owned();
    for i in 0..12 {
        let (district, code) = if i % 2 == 0 {
            ("渝北区", "500112")
        } else {
            ("江北区", "500105")
        };
        let (lat, lon) = (
            29.58 + 0.02 * f64::from(i / 4),
            106.50 + 0.03 * f64::from(i % 4),
        );
        sensors.push_str(&format!(
            "s{i:03},air,{district},{code},{district}街道{},g{i},{lat:.3},{lon:.3}\n",
            i % 3
        ));
    }
    std::fs::write(city.dir.path().join("sensors.csv"), sensors).unwrap();
    city.create_topics(&[("responses", 1)]).await;
    std::fs::write(city.dir.path().join("units.yaml"), UNITS).unwrap();
    // The operator's district boundaries (GeoJSON, lon/lat).
    let square = |name: &str, lon: f64| {
        json!({"type": "Feature", "properties": {"name": name}, "geometry": {"type": "Polygon",
            "coordinates": [[[lon, 29.57], [lon + 0.05, 29.57], [lon + 0.05, 29.63], [lon, 29.63], [lon, 29.57]]]}})
    };
    let districts = json!({"type": "FeatureCollection",
        "features": [square("渝北区", 106.49), square("江北区", 106.545)]});
    std::fs::write(
        city.dir.path().join("districts.geojson"),
        districts.to_string(),
    )
    .unwrap();
    let config = city.config_with(
        "board: { districts: districts.geojson }\nresponse: { units: units.yaml, topic: responses }",
        "  - kind: kafka\n    topic: alerts\n",
    );
    // s000 (Yubei, g0) and s001 (Jiangbei, g1) warned; s002 (Yubei) later.
    let quiet = |v: [f64; 3]| {
        let mut all = vec![10.0; 12];
        all[..3].copy_from_slice(&v);
        all
    };
    city.produce(&[
        (0, quiet([100.0, 100.0, 10.0])),
        (1, quiet([100.0, 100.0, 10.0])),
    ])
    .await;
    let url = format!("http://127.0.0.1:{}/board", city.metrics_port());
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let (result, (first, added, signed_in, acted, timing, errors)) =
        run_while(config, async {
            let alerts = city.alerts(2).await;
            let mut on_topic: Vec<String> = alerts
                .iter()
                .map(|a| a["warning_id"].as_str().unwrap().to_owned())
                .collect();
            on_topic.sort();
            browser.ask(json!({"cmd": "open", "url": url, "lang": "zh-CN"})).await;
            let first = browser.ask(json!({"cmd": "wait_rows", "n": 2})).await;
            let mut shown: Vec<String> = serde_json::from_value(first["ids"].clone()).unwrap();
            shown.sort();
            assert_eq!(shown, on_topic, "the page shows the alert topic's warnings");
            browser
                .ask(json!({"cmd": "screenshot", "path": docs.join("board-zh.png")}))
                .await;

            // A new warning appears, a resolved one goes, without a reload.
            city.produce(&[(2, quiet([10.0, 100.0, 100.0])), (3, quiet([10.0, 100.0, 100.0]))])
                .await;
            let added = browser
                .ask(json!({"cmd": "wait_change", "has": "s002", "lacks": "s000"}))
                .await;

            // grid-g1 signs in: buttons on its own warning only.
            let signed_in = browser
                .ask(json!({"cmd": "sign_in", "token": "board-g1"}))
                .await;
            let mine = signed_in["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .find(|id| id.contains("s001"))
                .unwrap();
            let acted = browser
                .ask(json!({"cmd": "click", "warning": mine, "action": "acknowledge", "until": "已签收"}))
                .await;
            // g0's last 24 hours: s000's warning raised, then resolved.
            let timeline = browser.ask(json!({"cmd": "timeline", "grid": "g0"})).await;
            assert_eq!(
                timeline["transitions"],
                json!(["resolved", "raised"]),
                "{timeline}"
            );
            browser.ask(json!({"cmd": "lang", "value": "en"})).await;
            browser
                .ask(json!({"cmd": "screenshot", "path": docs.join("board-en.png")}))
                .await;
            let timing = browser.ask(json!({"cmd": "measure"})).await;
            let errors = browser.ask(json!({"cmd": "errors"})).await;
            (first, added, signed_in, acted, timing, errors)
        })
        .await;
    result.expect("stops cleanly");
    // yujing stopped: the page says so.
    let lost = browser.ask(json!({"cmd": "wait_lost"})).await;
    assert_eq!(lost["connection_lost"], true);
    drop(browser);

    // Read-only at first: no buttons; warned grids in blue.
    assert!(
        first["buttons"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n == 0),
        "{first}"
    );
    assert_eq!(first["districts"], 2, "the GeoJSON boundaries drawn");
    assert_eq!(first["cells"]["g0"], "blue", "{first}");
    assert_eq!(first["cells"]["g1"], "blue", "{first}");
    assert_eq!(first["cells"]["g2"], "none", "{first}");
    // s000 resolved and s002 raised, live.
    let ids: Vec<&str> = added["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(ids.iter().any(|id| id.contains("s002")), "{added}");
    assert!(!ids.iter().any(|id| id.contains("s000")), "{added}");
    assert_eq!(added["cells"]["g0"], "none", "{added}");
    assert_eq!(added["cells"]["g2"], "blue", "{added}");
    // grid-g1 may act on s001's warning (Jiangbei), not on s002's (Yubei).
    for (id, n) in signed_in["buttons"].as_object().unwrap() {
        // Assigned: acknowledging is the one step.
        let want = if id.contains("s001") { 1 } else { 0 };
        assert_eq!(n, want, "{id}: {signed_in}");
    }
    let acked_id = acted["ids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v.as_str().unwrap().contains("s001"))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        acted["responses"][&acked_id]
            .as_str()
            .unwrap()
            .contains("已签收")
    );
    // Acknowledged: dispatch, on site, refer, or close with a verdict
    // (confirmed, false alarm, sensor fault).
    assert_eq!(acted["buttons"][&acked_id], 6, "{acted}");
    // The click is a response message on Kafka.
    let bootstrap = city.bootstrap().to_owned();
    let published = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "responses", 10, Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(
        published.iter().any(|r| {
            let m: Value = serde_json::from_slice(&r.payload).unwrap();
            m["warning_id"] == acked_id.as_str()
                && m["change"] == "acknowledged"
                && m["actor"] == "grid-g1"
        }),
        "the acknowledgement on the response topic"
    );
    assert_eq!(errors["errors"], json!([]), "no console errors");
    assert!(timing["render_ms"].as_f64().unwrap() >= 0.0);
}
