//! Where the engine's thread runs.
//!
//! Every group commit sleeps in the journal's write, and the data disk's completion interrupt
//! wakes it. A disk with a single hardware queue (a virtio disk, most SATA controllers) takes
//! that interrupt on one CPU; an engine running on another CPU is woken there by an
//! inter-processor interrupt, twice per commit (the write, then the cache flush) — on a
//! virtual machine each one an exit to the host. So by default (`engine_cpu = "auto"`) the
//! engine is kept on the CPU that takes its disk's interrupts, when that is one CPU this
//! process may use; otherwise it is left to the scheduler. A disk with a queue per CPU
//! completes where the I/O was submitted and needs nothing.
//!
//! Everything here reads `/sys` and `/proc` under a root directory, so tests give it a tree
//! of their own.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Stacked devices (a partition on LVM on a disk) followed at most this deep.
const STACK_DEPTH_MAX: usize = 8;

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
/// process may run on), reading `/sys` and `/proc` under `root`.
///
/// # Errors
/// A CPU named in the config that this process may not run on.
pub fn decide(
    setting: EngineCpu,
    data_dir: &Path,
    allowed: &BTreeSet<usize>,
    root: &Path,
) -> Result<Placement, String> {
    let unpinned = |why: String| Ok(Placement { cpu: None, why });
    match setting {
        EngineCpu::Named(Named::None) => unpinned("engine_cpu = \"none\"".to_owned()),
        EngineCpu::Cpu(cpu) if allowed.contains(&cpu) => Ok(Placement { cpu: Some(cpu), why: "engine_cpu".to_owned() }),
        EngineCpu::Cpu(cpu) => {
            Err(format!("engine_cpu = {cpu}, but this process may run only on CPUs {}", cpu_list_text(allowed)))
        }
        EngineCpu::Named(Named::Auto) if allowed.len() < 2 => {
            unpinned("this process may run on one CPU only".to_owned())
        }
        EngineCpu::Named(Named::Auto) => match disk_interrupt_cpu(data_dir, root) {
            Ok((cpu, disk)) if allowed.contains(&cpu) => {
                Ok(Placement { cpu: Some(cpu), why: format!("the CPU that takes the interrupts of {disk}") })
            }
            Ok((cpu, disk)) => unpinned(format!("{disk}'s interrupts go to CPU {cpu}, which this process may not use")),
            Err(why) => unpinned(why),
        },
    }
}

/// A move of the engine: to `cpu` (or to none in particular), allowed `cpus`.
#[derive(Debug, PartialEq, Eq)]
pub struct Move {
    pub cpu: Option<usize>,
    pub cpus: BTreeSet<usize>,
    pub why: String,
}

/// Where an engine that `engine_cpu = "auto"` placed on `current` should go now; `None` if
/// it is where it should be.
pub fn recheck(current: Option<usize>, data_dir: &Path, allowed: &BTreeSet<usize>, root: &Path) -> Option<Move> {
    let placed = decide(EngineCpu::AUTO, data_dir, allowed, root).ok()?;
    if placed.cpu == current {
        return None;
    }
    let cpus = placed.cpu.map_or_else(|| allowed.clone(), |cpu| BTreeSet::from([cpu]));
    Some(Move { cpu: placed.cpu, cpus, why: placed.why })
}

/// The one CPU that takes the completion interrupts of the disk holding `data_dir`, and the
/// disk's name; or why there is none to follow.
fn disk_interrupt_cpu(data_dir: &Path, root: &Path) -> Result<(usize, String), String> {
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
    let counts = std::fs::read_to_string(root.join("proc/interrupts")).map_err(|e| format!("/proc/interrupts: {e}"))?;
    let counts = interrupt_counts(&counts);
    // A device's other vectors (configuration changes) barely fire; its queue's does.
    let irq = irqs
        .into_iter()
        .max_by_key(|irq| counts.get(irq).copied().unwrap_or(0))
        .ok_or_else(|| format!("no interrupts found for {name}"))?;
    let affinity = root.join(format!("proc/irq/{irq}/effective_affinity_list"));
    let cpus = std::fs::read_to_string(&affinity)
        .ok()
        .and_then(|text| parse_cpu_list(&text))
        .ok_or_else(|| format!("cannot read {}", affinity.display()))?;
    match (cpus.first(), cpus.len()) {
        (Some(&cpu), 1) => Ok((cpu, name)),
        _ => Err(format!("{name}'s interrupt {irq} goes to CPUs {}", cpu_list_text(&cpus))),
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

/// Each numbered interrupt's count, summed over the CPUs, from `/proc/interrupts`.
fn interrupt_counts(text: &str) -> std::collections::HashMap<u32, u64> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let irq = fields.next()?.strip_suffix(':')?.parse().ok()?;
            let total = fields.map_while(|field| field.parse::<u64>().ok()).sum();
            Some((irq, total))
        })
        .collect()
}

/// A kernel CPU list such as `0-3,8,10-11`.
fn parse_cpu_list(text: &str) -> Option<BTreeSet<usize>> {
    let mut cpus = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (usize, usize) = (first.parse().ok()?, last.parse().ok()?);
                if first > last {
                    return None;
                }
                cpus.extend(first..=last);
            }
            None => {
                cpus.insert(part.parse().ok()?);
            }
        }
    }
    Some(cpus)
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

    /// This machine's layout: a virtio disk whose queue's interrupt (36) goes to CPU 1, and a
    /// configuration interrupt (35) that barely fires.
    const INTERRUPTS: &str = "           CPU0       CPU1       \n \
        35:          0          1 PCI-MSIX-0000:00:02.0   0-edge      virtio1-config\n \
        36:          0   42083020 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n\
        NMI:          0          0   Non-maskable interrupts\n";

    /// A fake `/sys` and `/proc` under a temporary root, with the data directory's real
    /// device number pointing at a virtio disk built as `disk` says.
    struct FakeRoot {
        root: tempfile::TempDir,
        data_dir: tempfile::TempDir,
    }

    impl FakeRoot {
        fn new(partition: bool, queues: usize, irq36_cpus: &str) -> FakeRoot {
            let root = tempfile::tempdir().unwrap();
            let data_dir = tempfile::tempdir().unwrap();
            let dev = std::fs::metadata(data_dir.path()).unwrap().dev();
            let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
            let pci = root.path().join("sys/devices/pci0000:00/0000:00:02.0");
            let disk = pci.join("virtio1/block/vda");
            for q in 0..queues {
                std::fs::create_dir_all(disk.join(format!("mq/{q}"))).unwrap();
            }
            std::fs::create_dir_all(&disk).unwrap();
            for irq in ["35", "36"] {
                std::fs::create_dir_all(pci.join("msi_irqs").join(irq)).unwrap();
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
            std::fs::create_dir_all(root.path().join("proc/irq/36")).unwrap();
            std::fs::create_dir_all(root.path().join("proc/irq/35")).unwrap();
            std::fs::write(root.path().join("proc/interrupts"), INTERRUPTS).unwrap();
            std::fs::write(root.path().join("proc/irq/36/effective_affinity_list"), format!("{irq36_cpus}\n")).unwrap();
            std::fs::write(root.path().join("proc/irq/35/effective_affinity_list"), "0\n").unwrap();
            FakeRoot { root, data_dir }
        }

        fn decide(&self, setting: EngineCpu, allowed: &[usize]) -> Result<Placement, String> {
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
    fn auto_follows_the_busiest_interrupt_of_a_single_queue_disk() {
        if skip_without_block_device() {
            return;
        }
        for partition in [false, true] {
            let fake = FakeRoot::new(partition, 1, "1");
            let placed = fake.decide(EngineCpu::AUTO, &[0, 1]).unwrap();
            assert_eq!(placed.cpu, Some(1), "partition {partition}: {}", placed.why);
            assert!(placed.why.contains("vda"), "{}", placed.why);
        }
    }

    #[test]
    fn auto_leaves_the_engine_alone_when_there_is_nothing_sure_to_follow() {
        if skip_without_block_device() {
            return;
        }
        let cases = [
            (FakeRoot::new(false, 2, "1"), vec![0, 1], "2 hardware queues"),
            (FakeRoot::new(false, 1, "0-1"), vec![0, 1], "goes to CPUs 0,1"),
            (FakeRoot::new(false, 1, "1"), vec![0, 2], "may not use"),
            (FakeRoot::new(false, 1, "1"), vec![1], "one CPU only"),
        ];
        for (fake, allowed, why) in cases {
            let placed = fake.decide(EngineCpu::AUTO, &allowed).unwrap();
            assert_eq!(placed.cpu, None, "{}", placed.why);
            assert!(placed.why.contains(why), "{:?} should say {why:?}", placed.why);
        }
    }

    #[test]
    fn an_interrupt_that_moves_takes_the_engine_with_it() {
        if skip_without_block_device() {
            return;
        }
        let fake = FakeRoot::new(false, 1, "1");
        let allowed = BTreeSet::from([0, 1]);
        let recheck = |current| recheck(current, fake.data_dir.path(), &allowed, fake.root.path());
        assert_eq!(recheck(Some(1)), None, "the interrupt stayed");
        let affinity = fake.root.path().join("proc/irq/36/effective_affinity_list");
        std::fs::write(&affinity, "0\n").unwrap();
        let moved = recheck(Some(1)).unwrap();
        assert_eq!((moved.cpu, moved.cpus), (Some(0), BTreeSet::from([0])), "{}", moved.why);
        std::fs::write(&affinity, "0-1\n").unwrap();
        let moved = recheck(Some(0)).unwrap();
        assert_eq!((moved.cpu, &moved.cpus), (None, &allowed), "spread over both, let go: {}", moved.why);
        assert_eq!(recheck(None), None);
    }

    #[test]
    fn a_named_cpu_is_taken_if_allowed_and_refused_otherwise() {
        let fake = FakeRoot::new(false, 1, "1");
        assert_eq!(fake.decide(EngineCpu::Cpu(0), &[0, 1]).unwrap().cpu, Some(0));
        let refused = fake.decide(EngineCpu::Cpu(7), &[0, 1]).unwrap_err();
        assert!(refused.contains("engine_cpu = 7") && refused.contains("0,1"), "{refused}");
        assert_eq!(fake.decide(EngineCpu::UNPINNED, &[0, 1]).unwrap().cpu, None);
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
    fn cpu_lists_and_interrupt_counts_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n").unwrap().into_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("1").unwrap().len(), 1);
        assert!(parse_cpu_list("3-1").is_none());
        assert!(parse_cpu_list("x").is_none());
        let counts = interrupt_counts(INTERRUPTS);
        assert_eq!(counts.get(&36), Some(&42_083_020));
        assert_eq!(counts.get(&35), Some(&1));
        assert_eq!(counts.len(), 2, "named rows such as NMI are not interrupts of a device");
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
