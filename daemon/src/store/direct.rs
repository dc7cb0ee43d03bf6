//! Writes to the journal past the page cache: `O_DIRECT | O_DSYNC`, whole aligned blocks.
//!
//! A record written through the page cache and then `fdatasync`ed takes the kernel's writeback
//! path (find the dirty pages, build the request, wait for it, then flush the disk's cache);
//! written directly it is one request from the caller's buffer, and `O_DSYNC` adds the cache
//! flush before the call returns. On this project's machines that made a lock hand-off, one
//! small record synced per hand-off, 3 to 6 % faster (docs/BENCHMARKS.md, "Optimisations").
//! It changes nothing about durability: the call returns once the record is on stable storage,
//! as `fdatasync` did.
//!
//! Direct I/O moves whole blocks from an aligned buffer, so a record that starts inside a block
//! is written together with the block's earlier bytes, kept from the previous write (or read
//! back once), and the rest of its last block is written as zeros, which is what lies past the
//! journal's tail anyway. The page cache would have written that same block whole.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The alignment of direct I/O's offsets, lengths and buffers: every common logical block
/// size (512 bytes, 4 KiB) divides it.
pub const BLOCK: usize = 4096;

/// A buffer kept between writes up to this size; larger records get one of their own.
const KEPT_BUFFER_MAX: usize = 1024 * 1024;

/// A file description opened for direct, synchronous writes.
#[derive(Debug)]
pub struct DirectWriter {
    file: File,
    /// Room for the largest write so far (up to [`KEPT_BUFFER_MAX`]), plus a block of slack
    /// to start at an aligned address.
    buffer: Vec<u8>,
    /// Where the last block written starts (`None`: unknown) ...
    last_block_at: Option<u64>,
    /// ... and its bytes: the next record usually begins inside it. Reused, not reallocated.
    last_block: Vec<u8>,
}

impl DirectWriter {
    /// Opens `path` for direct, synchronous writes; an error if the file system refuses
    /// (tmpfs did before Linux 6.6; network and FUSE file systems may).
    pub fn open(path: &std::path::Path) -> io::Result<DirectWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_DIRECT | nix::libc::O_DSYNC)
            .open(path)?;
        Ok(DirectWriter { file, buffer: Vec::new(), last_block_at: None, last_block: Vec::with_capacity(BLOCK) })
    }

    /// Writes `data` at `offset` and returns once it is on stable storage. The bytes before
    /// `offset` in its first block come from the last write or from `read_back`; the bytes
    /// after `data` in its last block become zeros.
    ///
    /// # Errors
    /// The write failed; `EINVAL` means the file system wants a larger alignment than
    /// [`BLOCK`] (the caller then writes through the page cache instead).
    pub fn write(
        &mut self,
        offset: u64,
        data: &[u8],
        read_back: impl FnOnce(u64, &mut [u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let start = offset - offset % BLOCK as u64;
        let head = usize::try_from(offset - start).expect("less than a block");
        let len = (head + data.len()).div_ceil(BLOCK) * BLOCK;
        let mut own = Vec::new();
        let room = if len + BLOCK <= KEPT_BUFFER_MAX {
            if self.buffer.len() < len + BLOCK {
                self.buffer = vec![0; len + BLOCK];
            }
            &mut self.buffer
        } else {
            own.resize(len + BLOCK, 0);
            &mut own
        };
        let aligned = room.as_ptr().align_offset(BLOCK);
        let blocks = &mut room[aligned..aligned + len];
        if head > 0 {
            if self.last_block_at == Some(start) {
                blocks[..head].copy_from_slice(&self.last_block[..head]);
            } else {
                read_back(start, &mut blocks[..head])?;
            }
        }
        blocks[head..head + data.len()].copy_from_slice(data);
        blocks[head + data.len()..].fill(0);
        // Until it succeeds, the last block on the disk is unknown.
        self.last_block_at = None;
        self.file.write_all_at(blocks, start)?;
        let last = len - BLOCK;
        self.last_block.clear();
        self.last_block.extend_from_slice(&blocks[last..]);
        self.last_block_at = Some(start + last as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &std::path::Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    /// On a file system that refuses direct I/O there is nothing to test: the journal writes
    /// through the page cache there.
    fn direct_file() -> Option<(tempfile::TempDir, std::path::PathBuf, DirectWriter)> {
        let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, vec![0u8; 4 * BLOCK]).unwrap();
        match DirectWriter::open(&path) {
            Ok(writer) => Some((dir, path, writer)),
            Err(e) => {
                eprintln!("direct I/O refused in {}: {e}; skipped", dir.path().display());
                None
            }
        }
    }

    #[test]
    fn records_written_at_any_offset_keep_the_bytes_before_them() {
        let Some((_dir, path, mut writer)) = direct_file() else { return };
        let mut expected = vec![0u8; 4 * BLOCK];
        let mut at = 0;
        // Lengths that start and end inside blocks, span several, and end exactly on one.
        for (i, len) in [10, 100, 4000, 5000, 86, BLOCK - (10 + 100 + 4000 + 5000 + 86) % BLOCK].into_iter().enumerate()
        {
            let data = vec![i as u8 + 1; len];
            let file = std::fs::File::open(&path).unwrap();
            writer.write(at as u64, &data, |offset, out| file.read_exact_at(out, offset)).unwrap();
            expected[at..at + len].copy_from_slice(&data);
            at += len;
            assert_eq!(read_all(&path)[..at], expected[..at], "after write {i}");
        }
        assert_eq!(at % BLOCK, 0);
    }

    #[test]
    fn a_first_write_inside_a_block_reads_the_block_back() {
        let Some((_dir, path, mut writer)) = direct_file() else { return };
        let before: Vec<u8> = (0..BLOCK).map(|i| i as u8).collect();
        std::fs::write(&path, &before).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut read_back = 0;
        writer
            .write(1000, b"record", |offset, out| {
                read_back += 1;
                file.read_exact_at(out, offset)
            })
            .unwrap();
        assert_eq!(read_back, 1);
        let after = read_all(&path);
        assert_eq!(after[..1000], before[..1000]);
        assert_eq!(&after[1000..1006], b"record");
        assert!(after[1006..BLOCK].iter().all(|&b| b == 0), "the rest of the block is zeros");
    }
}
