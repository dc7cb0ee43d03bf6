//! Where the engine's thread runs.
//!
//! Every group commit sleeps in the journal's write, and the data disk's completion interrupt
//! wakes it. A disk with a single hardware queue (a virtio disk, most SATA controllers) takes
//! that interrupt on one CPU; an engine running on another CPU is woken there by an
//! inter-processor interrupt, twice per commit (the write, then the cache flush) — on a
//! virtual machine each one an exit to the host. So by default (`engine_cpu = "auto"`) the
//! engine is kept on the CPU that has taken its disk's interrupts, when one CPU this process
//! may use took nearly all of them; otherwise it is left to the scheduler. Later the daemon
//! looks again at the interrupts of the last while and follows them if they moved. A disk
//! with a queue per CPU completes where the I/O was submitted and needs nothing.
//!
//! Everything here reads sysfs (under a root directory, so tests give it a tree of their
//! own), and nothing in `/proc`, which the systemd unit's `ProcSubset=pid` hides.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Stacked devices (a partition on LVM on a disk) followed at most this deep.
const STACK_DEPTH_MAX: usize = 8;
/// The share of a disk's interrupts, in percent, that one CPU must have taken to be followed.
const DOMINANT_SHARE_PERCENT: u64 = 90;
/// Interrupts needed to judge where a disk's interrupts go: fewer say nothing (a device's
/// configuration vector, a disk idle since the last look).
const JUDGED_INTERRUPTS_MIN: u64 = 64;

/// `engine_cpu` in the config file: `"auto"` (the default), `"none"`, or a CPU number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EngineCpu {
    Cpu(usize),
    Named(Named),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Named {
    Auto,
    None,
}

impl EngineCpu {
    pub const AUTO: EngineCpu = EngineCpu::Named(Named::Auto);
    pub const UNPINNED: EngineCpu = EngineCpu::Named(Named::None);
}

impl Default for EngineCpu {
    fn default() -> Self {
        EngineCpu::AUTO
    }
}

/// Where the engine will run, and why (for the log).
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    pub cpu: Option<usize>,
    pub why: String,
}

/// Decides the engine's CPU for a store in `data_dir`, among `allowed` (the CPUs this
/// process may run on), reading sysfs under `root`. With `"auto"` and a disk whose
/// interrupts can be followed, also returns what follows them.
///
/// # Errors
/// A CPU named in the config that this process may not run on.
pub fn decide(
    setting: EngineCpu,
    data_dir: &Path,
    allowed: &BTreeSet<usize>,
    root: &Path,
) -> Result<(Placement, Option<Follower>), String> {
    let unpinned = |why: String| Ok((Placement { cpu: None, why }, None));
    match setting {
        EngineCpu::Named(Named::None) => unpinned("engine_cpu = \"none\"".to_owned()),
        EngineCpu::Cpu(cpu) if allowed.contains(&cpu) => {
            Ok((Placement { cpu: Some(cpu), why: "engine_cpu".to_owned() }, None))
        }
        EngineCpu::Cpu(cpu) => {
            Err(format!("engine_cpu = {cpu}, but this process may run only on CPUs {}", cpu_list_text(allowed)))
        }
        EngineCpu::Named(Named::Auto) if allowed.len() < 2 => {
            unpinned("this process may run on one CPU only".to_owned())
        }
        EngineCpu::Named(Named::Auto) => {
            let (interrupts, counts) = match DiskInterrupts::find(data_dir, root) {
                Ok(found) => found,
                Err(why) => return unpinned(why),
            };
            let placement = interrupts.placement(&counts, allowed);
            let follower = Follower { interrupts, last: counts, cpu: placement.cpu };
            Ok((placement, Some(follower)))
        }
    }
}

/// A move of the engine: to `cpu` (or to none in particular), allowed `cpus`.
#[derive(Debug, PartialEq, Eq)]
pub struct Move {
    pub cpu: Option<usize>,
    pub cpus: BTreeSet<usize>,
    pub why: String,
}

/// Follows the data disk's interrupts: where they went since the last look.
#[derive(Debug)]
pub struct Follower {
    interrupts: DiskInterrupts,
    last: Vec<u64>,
    cpu: Option<usize>,
}

impl Follower {
    /// Where the engine should go, judged by the interrupts taken since the last look;
    /// `None` if it is where it should be, or too few came to tell.
    pub fn recheck(&mut self, allowed: &BTreeSet<usize>) -> Option<Move> {
        let now = self.interrupts.counts()?;
        let recent: Vec<u64> =
            now.iter().enumerate().map(|(cpu, n)| n.saturating_sub(self.last.get(cpu).copied().unwrap_or(0))).collect();
        self.last = now;
        if recent.iter().sum::<u64>() < JUDGED_INTERRUPTS_MIN {
            return None;
        }
        let placement = self.interrupts.placement(&recent, allowed);
        if placement.cpu == self.cpu {
            return None;
        }
        let cpus = placement.cpu.map_or_else(|| allowed.clone(), |cpu| BTreeSet::from([cpu]));
        Some(Move { cpu: placement.cpu, cpus, why: placement.why })
    }

    /// The engine was moved as `recheck` said.
    pub fn moved(&mut self, to: Option<usize>) {
        self.cpu = to;
    }
}

/// The queue interrupt of the disk under the data directory.
#[derive(Debug)]
struct DiskInterrupts {
    disk: String,
    irq: u32,
    root: PathBuf,
}

impl DiskInterrupts {
    /// Finds the disk holding `data_dir` and its busiest interrupt, with that interrupt's
    /// counts per CPU; or says why there is none to follow.
    fn find(data_dir: &Path, root: &Path) -> Result<(DiskInterrupts, Vec<u64>), String> {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(data_dir).map_err(|e| format!("cannot stat {}: {e}", data_dir.display()))?.dev();
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        if major == 0 {
            return Err(format!("{} is on no block device", data_dir.display()));
        }
        let link = root.join(format!("sys/dev/block/{major}:{minor}"));
        let device =
            std::fs::canonicalize(&link).map_err(|_| format!("block device {major}:{minor} not found in sysfs"))?;
        let disk = underlying_disk(device)?;
        let name = file_name(&disk);
        let queues = std::fs::read_dir(disk.join("mq")).map_or(0, Iterator::count);
        match queues {
            0 => return Err(format!("{name} has no hardware queue")),
            1 => {}
            _ => return Err(format!("{name} has {queues} hardware queues: its I/O completes where it was submitted")),
        }
        let irqs = device_interrupts(&disk, root).ok_or_else(|| format!("no interrupts found for {name}"))?;
        // A device's other vectors (configuration changes) barely fire; its queue's does.
        let (irq, counts) = irqs
            .into_iter()
            .filter_map(|irq| Some((irq, per_cpu_counts(root, irq)?)))
            .max_by_key(|(_, counts)| counts.iter().sum::<u64>())
            .ok_or_else(|| format!("no interrupt counts found for {name}"))?;
        Ok((DiskInterrupts { disk: name, irq, root: root.to_path_buf() }, counts))
    }

    fn counts(&self) -> Option<Vec<u64>> {
        per_cpu_counts(&self.root, self.irq)
    }

    /// Where `counts` (per CPU) say the engine belongs.
    fn placement(&self, counts: &[u64], allowed: &BTreeSet<usize>) -> Placement {
        let (disk, irq) = (&self.disk, self.irq);
        let total: u64 = counts.iter().sum();
        let busiest = counts.iter().enumerate().max_by_key(|(_, n)| **n).filter(|_| total >= JUDGED_INTERRUPTS_MIN);
        let why = match busiest {
            None => format!("{disk}'s interrupt {irq} has fired too few times to judge"),
            Some((cpu, &n)) if n * 100 < total * DOMINANT_SHARE_PERCENT => {
                format!("{disk}'s interrupt {irq} is spread over CPUs (CPU {cpu} took {n} of {total})")
            }
            Some((cpu, _)) if !allowed.contains(&cpu) => {
                format!("{disk}'s interrupt {irq} goes to CPU {cpu}, which this process may not use")
            }
            Some((cpu, _)) => {
                let why = format!("CPU {cpu} takes {disk}'s interrupts (interrupt {irq})");
                return Placement { cpu: Some(cpu), why };
            }
        };
        Placement { cpu: None, why }
    }
}

/// The whole disk under `device`: a partition's parent, and through device-mapper or RAID
/// devices built on exactly one disk.
fn underlying_disk(mut device: PathBuf) -> Result<PathBuf, String> {
    for _ in 0..STACK_DEPTH_MAX {
        if device.join("partition").exists() {
            device = device.parent().map(Path::to_path_buf).ok_or("a partition without a disk")?;
        }
        let below: Vec<PathBuf> = std::fs::read_dir(device.join("slaves"))
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        match below.as_slice() {
            [] => return Ok(device),
            [one] => {
                device = std::fs::canonicalize(one).map_err(|e| format!("{}: {e}", one.display()))?;
            }
            _ => return Err(format!("{} spans {} devices", file_name(&device), below.len())),
        }
    }
    Err(format!("{} is stacked more than {STACK_DEPTH_MAX} devices deep", file_name(&device)))
}

/// The message-signalled interrupts of the nearest device above `disk` that has any (the
/// PCI function of a virtio, NVMe or SATA controller).
fn device_interrupts(disk: &Path, root: &Path) -> Option<Vec<u32>> {
    let devices = root.join("sys/devices");
    disk.ancestors().skip(1).take_while(|dir| dir.starts_with(&devices)).find_map(|dir| {
        let entries = std::fs::read_dir(dir.join("msi_irqs")).ok()?;
        let irqs: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        (!irqs.is_empty()).then_some(irqs)
    })
}

/// Interrupt `irq`'s count on each CPU, from `/sys/kernel/irq/IRQ/per_cpu_count`.
fn per_cpu_counts(root: &Path, irq: u32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(root.join(format!("sys/kernel/irq/{irq}/per_cpu_count"))).ok()?;
    text.trim().split(',').map(|n| n.parse().ok()).collect()
}

fn cpu_list_text(cpus: &BTreeSet<usize>) -> String {
    cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The CPUs this process may run on.
///
/// # Errors
/// The kernel refused to say.
pub fn allowed_cpus() -> nix::Result<BTreeSet<usize>> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?;
    Ok((0..nix::sched::CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect())
}

/// Keeps the calling thread on `cpu`.
///
/// # Errors
/// The CPU is out of range, or the kernel refused.
pub fn pin_current_thread(cpu: usize) -> nix::Result<()> {
    set_thread_cpus(nix::unistd::Pid::from_raw(0), &BTreeSet::from([cpu]))
}

/// Lets thread `tid` of this process run on `cpus` only.
///
/// # Errors
/// A CPU out of range, or the kernel refused.
pub fn set_thread_cpus(tid: nix::unistd::Pid, cpus: &BTreeSet<usize>) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    nix::sched::sched_setaffinity(tid, &set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A fake sysfs under a temporary root, laid out as this machine's: the data directory's
    /// real device number points at a virtio disk on a PCI function with a configuration
    /// interrupt (35) that barely fires and a queue interrupt (36) counted as `irq36`.
    struct FakeRoot {
        root: tempfile::TempDir,
        data_dir: tempfile::TempDir,
    }

    impl FakeRoot {
        fn new(partition: bool, queues: usize, irq36: &str) -> FakeRoot {
            let root = tempfile::tempdir().unwrap();
            let data_dir = tempfile::tempdir().unwrap();
            let dev = std::fs::metadata(data_dir.path()).unwrap().dev();
            let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
            let pci = root.path().join("sys/devices/pci0000:00/0000:00:02.0");
            let disk = pci.join("virtio1/block/vda");
            std::fs::create_dir_all(&disk).unwrap();
            for q in 0..queues {
                std::fs::create_dir_all(disk.join(format!("mq/{q}"))).unwrap();
            }
            for irq in ["35", "36"] {
                std::fs::create_dir_all(pci.join("msi_irqs").join(irq)).unwrap();
                std::fs::create_dir_all(root.path().join("sys/kernel/irq").join(irq)).unwrap();
            }
            let device = if partition {
                let part = disk.join("vda1");
                std::fs::create_dir_all(&part).unwrap();
                std::fs::write(part.join("partition"), "1\n").unwrap();
                part
            } else {
                disk
            };
            std::fs::create_dir_all(root.path().join("sys/dev/block")).unwrap();
            std::os::unix::fs::symlink(&device, root.path().join(format!("sys/dev/block/{major}:{minor}"))).unwrap();
            let fake = FakeRoot { root, data_dir };
            fake.count(35, "0,1");
            fake.count(36, irq36);
            fake
        }

        fn count(&self, irq: u32, per_cpu: &str) {
            let file = self.root.path().join(format!("sys/kernel/irq/{irq}/per_cpu_count"));
            std::fs::write(file, format!("{per_cpu}\n")).unwrap();
        }

        fn decide(&self, setting: EngineCpu, allowed: &[usize]) -> Result<(Placement, Option<Follower>), String> {
            decide(setting, self.data_dir.path(), &allowed.iter().copied().collect(), self.root.path())
        }
    }

    fn skip_without_block_device() -> bool {
        let dev = std::fs::metadata(std::env::temp_dir()).unwrap().dev();
        let none = nix::sys::stat::major(dev) == 0;
        if none {
            eprintln!("skipped: the temporary directory is on no block device (tmpfs?), so no device number to map");
        }
        none
    }

    #[test]
    fn auto_follows_the_cpu_that_took_a_single_queue_disks_interrupts() {
        if skip_without_block_device() {
            return;
        }
        for partition in [false, true] {
            let fake = FakeRoot::new(partition, 1, "0,42083020");
            let (placed, follower) = fake.decide(EngineCpu::AUTO, &[0, 1]).unwrap();
            assert_eq!(placed.cpu, Some(1), "partition {partition}: {}", placed.why);
            assert!(placed.why.contains("vda") && placed.why.contains("interrupt 36"), "{}", placed.why);
            assert!(follower.is_some());
        }
    }

    #[test]
    fn auto_leaves_the_engine_alone_when_there_is_nothing_sure_to_follow() {
        if skip_without_block_device() {
            return;
        }
        let cases = [
            (FakeRoot::new(false, 2, "0,42083020"), vec![0, 1], "2 hardware queues"),
            (FakeRoot::new(false, 1, "21000000,21083020"), vec![0, 1], "spread over CPUs"),
            (FakeRoot::new(false, 1, "0,0"), vec![0, 1], "too few times to judge"),
            (FakeRoot::new(false, 1, "0,42083020"), vec![0, 2], "may not use"),
            (FakeRoot::new(false, 1, "0,42083020"), vec![1], "one CPU only"),
        ];
        for (fake, allowed, why) in cases {
            let (placed, _) = fake.decide(EngineCpu::AUTO, &allowed).unwrap();
            assert_eq!(placed.cpu, None, "{}", placed.why);
            assert!(placed.why.contains(why), "{:?} should say {why:?}", placed.why);
        }
    }

    #[test]
    fn the_follower_moves_the_engine_where_the_interrupts_went_since_it_last_looked() {
        if skip_without_block_device() {
            return;
        }
        let fake = FakeRoot::new(false, 1, "0,42083020");
        let allowed = BTreeSet::from([0, 1]);
        let (placed, follower) = fake.decide(EngineCpu::AUTO, &[0, 1]).unwrap();
        assert_eq!(placed.cpu, Some(1));
        let mut follower = follower.unwrap();
        fake.count(36, "0,42084020");
        assert_eq!(follower.recheck(&allowed), None, "still CPU 1");
        fake.count(36, "30,42084050");
        assert_eq!(follower.recheck(&allowed), None, "60 interrupts are too few to judge");
        fake.count(36, "1030,42084060");
        let moved = follower.recheck(&allowed).unwrap();
        assert_eq!((moved.cpu, &moved.cpus), (Some(0), &BTreeSet::from([0])), "{}", moved.why);
        follower.moved(moved.cpu);
        assert_eq!(follower.recheck(&allowed), None, "nothing since: nothing to judge");
        fake.count(36, "1530,42084560");
        let moved = follower.recheck(&allowed).unwrap();
        assert_eq!((moved.cpu, &moved.cpus), (None, &allowed), "spread over both, let go: {}", moved.why);
        follower.moved(moved.cpu);
        fake.count(36, "1530,42094560");
        assert_eq!(follower.recheck(&allowed).unwrap().cpu, Some(1), "back on CPU 1 alone");
    }

    #[test]
    fn a_named_cpu_is_taken_if_allowed_and_refused_otherwise() {
        let fake = FakeRoot::new(false, 1, "0,42083020");
        let (placed, follower) = fake.decide(EngineCpu::Cpu(0), &[0, 1]).unwrap();
        assert_eq!(placed.cpu, Some(0));
        assert!(follower.is_none(), "a named CPU is kept");
        let refused = fake.decide(EngineCpu::Cpu(7), &[0, 1]).unwrap_err();
        assert!(refused.contains("engine_cpu = 7") && refused.contains("0,1"), "{refused}");
        assert_eq!(fake.decide(EngineCpu::UNPINNED, &[0, 1]).unwrap().0.cpu, None);
    }

    #[test]
    fn the_setting_reads_as_written_in_the_config_file() {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            engine_cpu: EngineCpu,
        }
        let read = |text: &str| toml::from_str::<File>(text).map(|f| f.engine_cpu);
        assert_eq!(read("").unwrap(), EngineCpu::AUTO);
        assert_eq!(read("engine_cpu = \"auto\"").unwrap(), EngineCpu::AUTO);
        assert_eq!(read("engine_cpu = \"none\"").unwrap(), EngineCpu::UNPINNED);
        assert_eq!(read("engine_cpu = 3").unwrap(), EngineCpu::Cpu(3));
        assert!(read("engine_cpu = \"fast\"").is_err());
        assert!(read("engine_cpu = -1").is_err());
    }

    #[test]
    fn per_cpu_counts_parse_as_the_kernel_writes_them() {
        let fake = FakeRoot::new(false, 1, "0,42083020");
        assert_eq!(per_cpu_counts(fake.root.path(), 36), Some(vec![0, 42_083_020]));
        fake.count(36, "12,x");
        assert_eq!(per_cpu_counts(fake.root.path(), 36), None);
        assert_eq!(per_cpu_counts(fake.root.path(), 99), None);
    }

    #[test]
    fn the_calling_thread_can_be_pinned_to_a_cpu_it_may_use() {
        let allowed = allowed_cpus().unwrap();
        let cpu = *allowed.iter().next_back().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            let now = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
            assert!(now.is_set(cpu).unwrap());
            assert_eq!((0..nix::sched::CpuSet::count()).filter(|&c| now.is_set(c).unwrap()).count(), 1);
        })
        .join()
        .unwrap();
    }
}
