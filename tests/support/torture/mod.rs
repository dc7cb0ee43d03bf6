//! The torture harness (issue 6, RELIABILITY.md): a recorder of concurrent client histories
//! and the checkers that judge them.
//!
//! - [`history`]: operations on one node path with invoke/complete times (monotonic) and a
//!   result or *indeterminate*; watch event logs.
//! - [`linearizability`]: a Wing–Gong–Lowe checker per path over a register-with-version
//!   model, memoising (linearized set, state) as in Lowe's paper.
//! - [`watches`]: events per watcher ordered, unique, gap-free against the recorded writes,
//!   agreeing between watchers, and delivered before any reply that reveals the change.
//! - [`durability`]: acknowledged ⊆ recovered ⊆ attempted.
//! - [`workload`]: concurrent `baton::Client`s, each on its own session, that drive random
//!   operations against the real daemon and record them.
//!
//! Tests read `TORTURE_SCALE` (default 1) to run longer and `TORTURE_SEED` to replay a run;
//! each prints its figure on one line starting with `FIGURE ` (tests/torture.sh collects them).

pub mod broken;
pub mod durability;
pub mod history;
pub mod linearizability;
pub mod watches;
pub mod workload;

/// The scale factor for long runs: `TORTURE_SCALE` (default 1).
pub fn scale() -> u64 {
    std::env::var("TORTURE_SCALE").ok().and_then(|s| s.parse().ok()).filter(|&s| s > 0).unwrap_or(1)
}

/// The seed: `TORTURE_SEED`, else `default` (CI runs are seeded and repeatable in their
/// choices; the daemon's scheduling is not).
pub fn seed(default: u64) -> u64 {
    std::env::var("TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Prints a test's figure on one line (collected by tests/torture.sh).
pub fn figure(line: &str) {
    eprintln!("FIGURE {line}");
}

/// A small seeded generator (SplitMix64): no dependency, same seed, same choices.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The resident memory of process `pid` in KiB (from /proc), if readable.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The number of open file descriptors of process `pid`, if readable.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// CPU time (user + system) of process `pid` in clock ticks, if readable.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ") ".
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Writes `contents` to a file that outlives the test (for a failure's history), and returns
/// its path.
pub fn keep(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("baton-torture-{name}-{}.txt", std::process::id()));
    std::fs::write(&path, contents).expect("write the kept history");
    path
}

/// Keeps a daemon's directory (data, socket dir, log) when the test panics: declare it after
/// the [`crate::Daemon`] so it is dropped first, while the directory still exists.
pub struct KeepOnPanic {
    name: String,
    dir: std::path::PathBuf,
}

impl KeepOnPanic {
    pub fn new(name: &str, dir: &std::path::Path) -> KeepOnPanic {
        KeepOnPanic { name: name.to_owned(), dir: dir.to_owned() }
    }
}

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let to = std::env::temp_dir().join(format!("baton-torture-{}-{}", self.name, std::process::id()));
        let mut pending = vec![(self.dir.clone(), to.clone())];
        while let Some((from, to)) = pending.pop() {
            let _ = std::fs::create_dir_all(&to);
            for entry in std::fs::read_dir(&from).into_iter().flatten().flatten() {
                let target = to.join(entry.file_name());
                match entry.file_type() {
                    Ok(t) if t.is_dir() => pending.push((entry.path(), target)),
                    Ok(t) if t.is_file() => {
                        let _ = std::fs::copy(entry.path(), target);
                    }
                    _ => {}
                }
            }
        }
        eprintln!("kept the daemon's directory (data and log) in {}", to.display());
    }
}
