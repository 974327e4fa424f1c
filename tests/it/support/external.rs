//! Programs from the machine (Alertmanager, Prometheus, tansu) started for
//! a test, and a lock for tests that need the cores to themselves.

use std::time::Duration;

/// Held by the tests that need the machine's cores for real-time work (the
/// demo plays a city against the wall clock; the backtest equivalence test
/// grades a week in a debug build): run side by side on 2 cores, the demo
/// falls behind its clock and its readings turn late.
pub static CPU_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server program from the machine (Alertmanager, Prometheus), killed
/// when dropped. `.ci/run` installs them; a developer without them sets
/// `YUJING_SKIP_EXTERNAL=1` to skip those tests knowingly.
pub struct ExternalProcess {
    child: std::process::Child,
    name: String,
    log: tempfile::NamedTempFile,
}

/// Whether a program from the machine is there; `false` (test skipped)
/// only when it is missing and `YUJING_SKIP_EXTERNAL` is set, else a
/// missing program fails the test.
pub fn external_program(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()));
    if !found {
        if std::env::var_os("YUJING_SKIP_EXTERNAL").is_some() {
            eprintln!("skipped: {program} is not installed (YUJING_SKIP_EXTERNAL is set)");
            return false;
        }
        panic!(
            "{program} is not installed: `.ci/run` installs it (docs/testing.md says how), \
             or set YUJING_SKIP_EXTERNAL=1 to skip the tests that need it"
        );
    }
    true
}

impl ExternalProcess {
    /// Start `program` with `args`; `None` (test skipped) only when it is
    /// missing and `YUJING_SKIP_EXTERNAL` is set.
    pub fn start(program: &str, args: &[&str]) -> Option<Self> {
        if !external_program(program) {
            return None;
        }
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Some(ExternalProcess {
            child,
            name: program.to_owned(),
            log,
        })
    }

    /// Stop it now with SIGKILL (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait until the program accepts TCP connections on `port`, or fail
    /// with its log.
    pub async fn wait_port(&self, port: u16) {
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        panic!(
            "{} did not listen on port {port}; its log:\n{log}",
            self.name
        );
    }

    /// Wait until `url` answers 200, or fail with the program's log.
    pub async fn wait_ready(&self, url: &str) {
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(url).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        panic!("{} did not come up at {url}; its log:\n{log}", self.name);
    }
}

impl Drop for ExternalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
