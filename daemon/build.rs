//! Lays out `batond`'s code so that what an idle daemon runs sits together.
//!
//! Most of an idle daemon's memory is the pages of its own code that are mapped in, and the
//! kernel maps 64 KiB around each page it faults in: start-up, the first request and the
//! periodic tick touch only about a quarter of the code, but scattered over the whole text
//! they kept three quarters of it resident. `idle-code.ld` names those functions (a linker
//! script that only adds to the default layout; `tests/bench/idle-code.sh` regenerates it)
//! and the linker places them first in `.text`, so the rest of the code is not faulted in
//! until something uses it. Only the layout changes, not one instruction. Names are globs
//! without the mangling hash where that is unambiguous; names that match nothing are skipped,
//! so a stale list costs memory, never correctness. The list is made from README's install
//! build (`cargo build --release --locked --bins`): a build with other features (the
//! benchmark's etcd client, say) hashes the instances of generics differently, and gets less
//! of the benefit. Idle VmRSS of the install build: 6.1-6.4 MiB -> 4.4-4.6 MiB.
//!
//! The relocations a position-independent executable needs at start (one per pointer in
//! its read-only data, about 6,000 here) are packed (`DT_RELR`) where the C library can
//! read them (glibc 2.36 on): the loader then reads 5 KiB of them instead of 148 KiB, and
//! the idle daemon keeps about 0.15 MiB fewer of its file's pages. An older glibc would
//! refuse to start such a binary, so the packing follows the glibc it is built against.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=idle-code.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if uses_rust_lld() {
        let script = format!("{}/idle-code.ld", env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
        println!("cargo:rustc-link-arg-bin=batond=-Wl,-T,{script}");
        if glibc_reads_packed_relocations() {
            println!("cargo:rustc-link-arg-bin=batond=-Wl,-z,pack-relative-relocs");
        }
    }
}

/// Whether the glibc of this (build and run) machine reads `DT_RELR` relocations: 2.36 and
/// later, by `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_reads_packed_relocations() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else { return false };
    let version = String::from_utf8_lossy(&out.stdout);
    let mut numbers = version.split_whitespace().nth(1).unwrap_or("").split('.').map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (2, 36),
        _ => false,
    }
}

/// Whether the binary is linked by the toolchain's own LLD (the default for x86_64 Linux
/// (GNU) since Rust 1.90, unless a linker was chosen in the configuration): the script was
/// only tried with it.
fn uses_rust_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker")
        || flags.contains("fuse-ld")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let Ok(out) = Command::new(rustc).arg("--version").output() else { return false };
    let version = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (...)": the minor version.
    let minor = version.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)).and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
