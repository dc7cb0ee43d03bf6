//! The service under a real systemd: `systemd/batond.service`, the sysusers and tmpfiles files
//! and the example config, installed into a throwaway systemd (`../shared/tools/systemd-sandbox`:
//! PID 1 over a copy-on-write view of this machine, so nothing is installed on the host).
//!
//! Checks, in order: the unit starts and `systemctl start` (which, for `Type=notify`, returns
//! only after READY=1) is followed at once by a working CLI, so READY did not come early; a
//! member of group `baton` uses the socket and a non-member is refused; `systemctl restart`
//! keeps the data; the watchdog restarts a SIGSTOPped daemon; `systemd-analyze security` scores
//! the unit at 2.0 or lower; `systemctl stop` is clean.
//!
//! Needs root, `/lib/systemd/systemd` and the sandbox tool; otherwise it skips, saying why.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The socket the unit's RuntimeDirectory= and the example config give the daemon.
const SOCKET: &str = "/run/baton/baton.sock";
/// Highest `systemd-analyze security` exposure accepted (RELIABILITY.md).
const EXPOSURE_MAX: f64 = 2.0;
/// How long systemd may take to notice a hung daemon and restart it (WatchdogSec=2s here).
const WATCHDOG_DEADLINE: Duration = Duration::from_secs(20);

/// The test's drop-in, installed after the shipped unit has been scored: a short watchdog to
/// keep the test fast; SIGKILL rather than the default SIGABRT so no core dump is written
/// wherever this host's core_pattern points; and PrivateDevices=no, because systemd 252 cannot
/// build a private /dev inside the sandbox, whose own /dev is a tmpfs of bind-mounted nodes
/// ("Failed to set up mount namespacing: /run/systemd/unit-root/dev: No such file or
/// directory"). Every other hardening option of the shipped unit stays in force here.
const TEST_DROP_IN: &str = "[Service]\nWatchdogSec=2s\nWatchdogSignal=SIGKILL\nRestartSec=200ms\nPrivateDevices=no\n";

/// A booted throwaway systemd, stopped (and its directory removed) on drop.
struct Sandbox {
    tool: PathBuf,
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Sandbox {
    /// Boots one, or says why it cannot and returns None.
    fn start() -> Option<Sandbox> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let tool = workspace.join("../shared/tools/systemd-sandbox");
        if !tool.exists() {
            eprintln!("skipping: {} not found", tool.display());
            return None;
        }
        if nix::unistd::geteuid().as_raw() != 0 {
            eprintln!("skipping: booting a sandboxed systemd needs root");
            return None;
        }
        if !Path::new("/lib/systemd/systemd").exists() {
            eprintln!("skipping: /lib/systemd/systemd is missing");
            return None;
        }
        let parent = tempfile::Builder::new().prefix("baton-systemd-").tempdir().expect("temp dir");
        let dir = parent.path().join("sandbox");
        let sandbox = Sandbox { tool, dir, _parent: parent };
        // Constructed before booting, so a half-started sandbox is stopped too.
        let booted = Command::new(&sandbox.tool).arg("start").arg(&sandbox.dir).output().expect("run systemd-sandbox");
        assert!(booted.status.success(), "systemd-sandbox start failed: {}", String::from_utf8_lossy(&booted.stderr));
        Some(sandbox)
    }

    /// Runs `script` with `sh -c` inside, feeding it `stdin`.
    fn sh_with_input(&self, script: &str, stdin: &[u8]) -> Output {
        let mut child = Command::new(&self.tool)
            .arg("exec")
            .arg(&self.dir)
            .args(["sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run systemd-sandbox exec");
        child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
        child.wait_with_output().expect("wait for systemd-sandbox exec")
    }

    /// Runs `script` with `sh -c` inside.
    fn sh(&self, script: &str) -> Output {
        self.sh_with_input(script, b"")
    }

    /// Runs `script` inside, asserting it succeeds; returns its trimmed stdout.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` failed ({}): {}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.journal()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Writes `contents` to `dest` inside, with `mode`.
    fn install(&self, contents: &[u8], dest: &str, mode: &str) {
        let script = format!("mkdir -p \"$(dirname {dest})\" && cat > {dest} && chmod {mode} {dest}");
        let out = self.sh_with_input(&script, contents);
        assert!(out.status.success(), "installing {dest} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// One property of the unit, from `systemctl show`.
    fn show(&self, property: &str) -> String {
        self.ok(&format!("systemctl show -P {property} batond"))
    }

    /// The daemon's log, for failure messages.
    fn journal(&self) -> String {
        let out = self.sh("journalctl -u batond --no-pager -o cat 2>&1 | tail -40");
        format!("journal of batond:\n{}", String::from_utf8_lossy(&out.stdout))
    }

    /// The CLI as `user` against the service's socket; returns the whole output.
    fn cli_as(&self, user: &str, args: &str) -> Output {
        self.sh(&format!("runuser -u {user} -- /usr/local/bin/baton --addr {SOCKET} {args}"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new(&self.tool).arg("stop").arg(&self.dir).status();
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn batond_runs_as_a_hardened_notify_service_under_systemd() {
    let started = Instant::now();
    let (batond, baton) = (baton_tests::binary("batond"), baton_tests::binary("baton"));
    let Some(sandbox) = Sandbox::start() else { return };
    eprintln!("sandbox booted in {:?}", started.elapsed());
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");

    // Installed as README.md's "Install as a service" says, but inside the sandbox.
    sandbox.install(&read(&batond), "/usr/local/bin/batond", "0755");
    sandbox.install(&read(&baton), "/usr/local/bin/baton", "0755");
    sandbox.install(&read(&units.join("batond.service")), "/etc/systemd/system/batond.service", "0644");
    sandbox.install(&read(&units.join("baton.sysusers")), "/etc/sysusers.d/baton.conf", "0644");
    sandbox.install(&read(&units.join("baton.tmpfiles")), "/etc/tmpfiles.d/baton.conf", "0644");
    sandbox.ok("systemd-sysusers /etc/sysusers.d/baton.conf && systemd-tmpfiles --create /etc/tmpfiles.d/baton.conf");
    sandbox.install(&read(&units.join("batond.toml")), "/etc/baton/batond.toml", "0640");
    sandbox.ok("chown root:baton /etc/baton/batond.toml");
    sandbox.ok("systemctl daemon-reload");
    // Hardening, of the unit as shipped (before the test's drop-in).
    let report = sandbox.ok("systemd-analyze security --no-pager batond.service");
    let line = report.lines().find(|l| l.contains("Overall exposure level")).expect("an exposure line");
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"));
    eprintln!("check: {}", line.trim());
    assert!(score <= EXPOSURE_MAX, "exposure {score} above {EXPOSURE_MAX}:\n{report}");

    sandbox.install(TEST_DROP_IN.as_bytes(), "/etc/systemd/system/batond.service.d/test.conf", "0644");
    sandbox.ok("systemctl daemon-reload");
    sandbox.ok("useradd -M -G baton alice && useradd -M mallory");

    // READY=1 only once serving: `start` returns after READY=1, and the very next client works.
    sandbox.ok("systemctl start batond");
    assert_eq!(sandbox.ok("systemctl is-active batond"), "active");
    let created = sandbox.cli_as("alice", "create /x v");
    assert!(
        created.status.success(),
        "the CLI failed right after `systemctl start` returned (READY=1 came too early?): {}\n{}",
        String::from_utf8_lossy(&created.stderr),
        sandbox.journal()
    );
    eprintln!("check: active, and serving as soon as `systemctl start` returned: ok");
    let journal = sandbox.journal();
    let (recovered, ready) = (journal.find("store recovered"), journal.find("READY=1"));
    assert!(recovered.is_some() && ready.is_some() && recovered < ready, "READY=1 before recovery?\n{journal}");
    assert!(journal.contains("systemd watchdog on"), "the watchdog is not armed:\n{journal}");
    eprintln!("check: the log shows recovery, then READY=1, and the watchdog armed: ok");
    // The engine's placement ran under the unit's filters (sysfs read, and the affinity set
    // if there was a CPU to keep it on), and the log says where it went.
    let placed =
        journal.lines().find(|l| l.contains("engine kept on one CPU") || l.contains("engine placed by the scheduler"));
    let placed = placed.unwrap_or_else(|| panic!("no word of the engine's placement:\n{journal}"));
    assert!(
        !journal.contains("cannot keep the engine on its CPU"),
        "the unit refused the engine's affinity:\n{journal}"
    );
    eprintln!("check: {}: ok", placed.trim());
    // The unit's LimitNOFILE sets both limits (65536, or the most the machine allows), which
    // hold the default connections_max; reading them passed the unit's system-call filter. So
    // the daemon has nothing to say about them.
    assert!(!journal.contains("open-files limit"), "the open-files check spoke:\n{journal}");
    let limits = sandbox.ok("grep 'Max open files' /proc/$(systemctl show -p MainPID --value batond)/limits");
    let limits: Vec<&str> = limits.split_whitespace().collect();
    assert!(limits.len() > 4 && limits[3] == limits[4], "soft and hard limits differ: {limits:?}");
    eprintln!("check: open files {} under the unit, no warning: ok", limits[3]);
    assert_eq!(
        sandbox.ok("stat -c '%a %U:%G' /run/baton /run/baton/baton.sock /var/lib/baton"),
        "750 baton:baton\n660 baton:baton\n700 baton:baton"
    );
    eprintln!("check: /run/baton 0750, the socket 0660, /var/lib/baton 0700, all baton:baton: ok");

    // Group members get in; others are refused at the socket.
    assert_eq!(String::from_utf8_lossy(&sandbox.cli_as("alice", "get /x").stdout), "v");
    let refused = sandbox.cli_as("mallory", "get /x");
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "a non-member got in: {refusal}");
    assert!(refusal.contains("Permission denied"), "unexpected refusal: {refusal}");
    eprintln!("check: member of group baton served, non-member refused ({}): ok", refusal.trim());

    // A restart keeps the data.
    let pid_before = sandbox.show("MainPID");
    sandbox.ok("systemctl restart batond");
    assert_ne!(sandbox.show("MainPID"), pid_before, "restart did not start a new process");
    assert_eq!(String::from_utf8_lossy(&sandbox.cli_as("alice", "get /x").stdout), "v", "{}", sandbox.journal());
    eprintln!("check: systemctl restart keeps the data: ok");

    // A CPU named for the engine holds it under the unit's system-call filter, which lets the
    // affinity call through (the sandbox's data directory is on no block device, so "auto"
    // above had nothing to follow).
    sandbox.ok("echo 'engine_cpu = 0' >> /etc/baton/batond.toml && systemctl restart batond");
    let journal = sandbox.journal();
    assert!(journal.contains("engine kept on one CPU cpu=0"), "{journal}");
    assert!(
        !journal.contains("cannot keep the engine on its CPU"),
        "the unit refused the engine's affinity:\n{journal}"
    );
    let engine = sandbox.ok("pid=$(systemctl show -p MainPID --value batond); \
         for t in /proc/$pid/task/*; do [ \"$(cat $t/comm)\" = engine ] && grep Cpus_allowed_list $t/status; done");
    assert_eq!(engine.split_whitespace().collect::<Vec<_>>(), ["Cpus_allowed_list:", "0"], "{journal}");
    eprintln!("check: engine_cpu = 0 keeps the engine there under the unit's filters: ok");

    // The watchdog restarts a hung daemon.
    let (pid, restarts) = (sandbox.show("MainPID"), sandbox.show("NRestarts").parse::<u32>().expect("NRestarts"));
    sandbox.ok(&format!("kill -STOP {pid}"));
    let stopped_at = Instant::now();
    loop {
        let now_pid = sandbox.show("MainPID");
        let now_restarts: u32 = sandbox.show("NRestarts").parse().expect("NRestarts");
        if now_restarts > restarts && now_pid != pid && now_pid != "0" && sandbox.show("ActiveState") == "active" {
            break;
        }
        assert!(
            stopped_at.elapsed() < WATCHDOG_DEADLINE,
            "the watchdog did not restart the stopped daemon\n{}",
            sandbox.journal()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let restarted_after = stopped_at.elapsed();
    assert_eq!(String::from_utf8_lossy(&sandbox.cli_as("alice", "get /x").stdout), "v", "{}", sandbox.journal());
    assert!(
        sandbox.journal().contains("Watchdog timeout"),
        "systemd did not log a watchdog timeout\n{}",
        sandbox.journal()
    );
    eprintln!(
        "check: SIGSTOPped daemon restarted by the watchdog after {restarted_after:?} (WatchdogSec=2s), data kept: ok"
    );

    // A clean stop: SIGTERM drains and exits 0, so the unit is inactive, not failed.
    sandbox.ok("systemctl stop batond");
    let state = sandbox.ok("systemctl show -P ActiveState batond; systemctl show -P Result batond; systemctl show -P ExecMainStatus batond");
    assert_eq!(state, "inactive\nsuccess\n0", "{}", sandbox.journal());
    let journal = sandbox.journal();
    assert!(journal.contains("STOPPING=1"), "no STOPPING=1 sent:\n{journal}");
    eprintln!("check: systemctl stop: inactive, result success, exit status 0, STOPPING=1 sent: ok");
    eprintln!("done in {:?}", started.elapsed());
}
