//! Rules reload requests: SIGHUP, a change to the rules files, or an
//! authenticated `POST /-/reload`. Each becomes a [`ReloadRequest`] on one
//! channel; the pipeline applies them between message bursts, so a reload
//! never races a window being graded.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

/// What asked for the reload (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    Signal,
    FileChange,
    Http,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Signal => "signal",
            ReloadTrigger::FileChange => "file_change",
            ReloadTrigger::Http => "http",
        }
    }
}

/// A reload to do; `reply` gets the outcome (a summary, or every problem).
pub struct ReloadRequest {
    pub trigger: ReloadTrigger,
    pub reply: Option<oneshot::Sender<Result<String, String>>>,
}

pub type ReloadSender = mpsc::Sender<ReloadRequest>;
pub type ReloadReceiver = mpsc::Receiver<ReloadRequest>;

pub fn channel() -> (ReloadSender, ReloadReceiver) {
    mpsc::channel(8)
}

/// Ask for a reload on every SIGHUP until the receiver is gone.
pub fn spawn_sighup(tx: ReloadSender) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: reload by signal is off");
            return;
        };
        while hup.recv().await.is_some() {
            let req = ReloadRequest {
                trigger: ReloadTrigger::Signal,
                reply: None,
            };
            if tx.send(req).await.is_err() {
                return;
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
}

/// Ask for a reload when the rules files change: size, modification time
/// or the set of files in a rules directory, polled every `interval`.
/// Polling also sees a Kubernetes ConfigMap's symlink swap, which file
/// events can miss.
pub fn spawn_file_watch(paths: Vec<PathBuf>, interval: Duration, tx: ReloadSender) {
    tokio::spawn(async move {
        let mut last = fingerprint(&paths);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = fingerprint(&paths);
            if now == last {
                continue;
            }
            last = now;
            let req = ReloadRequest {
                trigger: ReloadTrigger::FileChange,
                reply: None,
            };
            if tx.send(req).await.is_err() {
                return;
            }
        }
    });
}

/// What identifies the current content of the rules files, cheaply.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
    let stat = |p: &PathBuf| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
    };
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            entries.sort();
            for e in entries {
                let s = stat(&e);
                out.push((e, s));
            }
        } else {
            out.push((path.clone(), stat(path)));
        }
    }
    out
}

/// Constant-time comparison of a presented token with the expected one.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    if a.len() != b.len() || b.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_rules_file_asks_for_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.yaml");
        std::fs::write(&file, "rules: []\n").unwrap();
        let (tx, mut rx) = channel();
        spawn_file_watch(vec![dir.path().to_owned()], Duration::from_millis(20), tx);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(rx.try_recv().is_err(), "no change, no reload");
        std::fs::write(&file, "rules: []  # edited\n").unwrap();
        let req = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a reload request")
            .unwrap();
        assert_eq!(req.trigger, ReloadTrigger::FileChange);
        // A new file in the rules directory counts too.
        std::fs::write(dir.path().join("more.yaml"), "rules: []\n").unwrap();
        let req = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(req.is_ok());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", ""), "an empty token never matches");
    }
}
