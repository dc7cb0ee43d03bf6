//! Two test hosts on one machine: network namespaces joined by a veth pair, with iptables in
//! the first to cut the link. Needs root, `ip` and `iptables`; without them a test skips
//! with a message saying why. Everything created here is removed on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Hosts {
    pub a: String,
    pub b: String,
    pub ip_a: String,
    pub ip_b: String,
    partitioned: bool,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Hosts {
    /// Two fresh hosts, or `None` (with the reason printed) where this machine cannot make them.
    pub fn create() -> Option<Hosts> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: network namespaces need root (CI runs as root)");
            return None;
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("--version").output().is_err() {
                eprintln!("skipped: `{tool}` is not installed (.ci/run installs it)");
                return None;
            }
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let subnet = 100 + (std::process::id() + n) % 150;
        let hosts = Hosts {
            a: format!("batonA-{tag}"),
            b: format!("batonB-{tag}"),
            ip_a: format!("10.231.{subnet}.1"),
            ip_b: format!("10.231.{subnet}.2"),
            partitioned: false,
        };
        let (va, vb) = (format!("bva{tag}"), format!("bvb{tag}"));
        let (va, vb) = (&va[..va.len().min(15)], &vb[..vb.len().min(15)]);
        let steps: Vec<Vec<String>> = vec![
            vec!["ip".into(), "netns".into(), "add".into(), hosts.a.clone()],
            vec!["ip".into(), "netns".into(), "add".into(), hosts.b.clone()],
            vec![
                "ip".into(),
                "link".into(),
                "add".into(),
                va.into(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                vb.into(),
            ],
            vec!["ip".into(), "link".into(), "set".into(), va.into(), "netns".into(), hosts.a.clone()],
            vec!["ip".into(), "link".into(), "set".into(), vb.into(), "netns".into(), hosts.b.clone()],
            vec![
                "ip".into(),
                "-n".into(),
                hosts.a.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/24", hosts.ip_a),
                "dev".into(),
                va.into(),
            ],
            vec![
                "ip".into(),
                "-n".into(),
                hosts.b.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/24", hosts.ip_b),
                "dev".into(),
                vb.into(),
            ],
            vec!["ip".into(), "-n".into(), hosts.a.clone(), "link".into(), "set".into(), va.into(), "up".into()],
            vec!["ip".into(), "-n".into(), hosts.b.clone(), "link".into(), "set".into(), vb.into(), "up".into()],
            vec!["ip".into(), "-n".into(), hosts.a.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
            vec!["ip".into(), "-n".into(), hosts.b.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
        ];
        for step in &steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            if let Err(e) = run(&args) {
                eprintln!("skipped: cannot create network namespaces here: {e}");
                return None;
            }
        }
        Some(hosts)
    }

    fn rules(&self, action: &str) -> Result<(), String> {
        run(&["ip", "netns", "exec", &self.a, "iptables", action, "INPUT", "-s", &self.ip_b, "-j", "DROP"])?;
        run(&["ip", "netns", "exec", &self.a, "iptables", action, "OUTPUT", "-d", &self.ip_b, "-j", "DROP"])
    }

    /// Drops every packet between the two hosts.
    pub fn partition(&mut self) {
        self.rules("-A").expect("iptables partition");
        self.partitioned = true;
    }

    /// Lets packets through again.
    pub fn heal(&mut self) {
        self.rules("-D").expect("iptables heal");
        self.partitioned = false;
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if self.partitioned {
            let _ = self.rules("-D");
        }
        // Deleting a namespace removes its end of the veth pair, and so the pair.
        let _ = run(&["ip", "netns", "del", &self.a]);
        let _ = run(&["ip", "netns", "del", &self.b]);
    }
}
