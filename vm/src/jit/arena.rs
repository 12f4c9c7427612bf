//! The executable memory that compiled blocks live in: mapped `ARENA_BYTES` at a time, written
//! while writable and run while executable (never both), and never unmapped while a block placed
//! in it may still be called.

use dynasmrt::mmap::{ExecutableBuffer, MutableBuffer};
use std::io;

/// Bytes of executable memory mapped at a time.
const ARENA_BYTES: usize = 1 << 20;

/// Executable memory for compiled blocks.
#[derive(Default)]
pub(super) struct CodeArena {
    /// Arenas with no room left; never re-protected, so their code stays valid.
    full: Vec<ExecutableBuffer>,
    /// The arena new code goes into; empty before the first block.
    current: ExecutableBuffer,
    /// Bytes of `current` in use.
    used: usize,
}

impl CodeArena {
    /// Copies `code` into executable memory and returns where it starts.
    pub(super) fn place(&mut self, code: &[u8]) -> io::Result<*const u8> {
        if code.len() > ARENA_BYTES {
            return Err(io::Error::other("block larger than an arena"));
        }
        let current = std::mem::take(&mut self.current);
        let mut buffer = if current.size() == 0 || self.used + code.len() > ARENA_BYTES {
            let fresh = MutableBuffer::new(ARENA_BYTES);
            if current.size() != 0 {
                self.full.push(current);
            }
            self.used = 0;
            fresh?
        } else {
            current.make_mut()?
        };
        let start = self.used;
        buffer.set_len(start + code.len());
        buffer[start..].copy_from_slice(code);
        // Changing protection keeps the address: blocks placed earlier in `current` stay where
        // they are.
        self.current = buffer.make_exec()?;
        self.used += code.len();
        Ok(self.current.as_ptr().wrapping_add(start))
    }

    /// Unmaps everything. No pointer returned by [`Self::place`] may be called afterwards.
    pub(super) fn clear(&mut self) {
        self.full.clear();
        self.current = ExecutableBuffer::default();
        self.used = 0;
    }
}
