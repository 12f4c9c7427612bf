//! The executable memory that compiled blocks live in: mapped `ARENA_BYTES` at a time, written
//! while writable and run while executable (never both), and never unmapped while a block placed
//! in it may still be called.

use dynasmrt::mmap::{ExecutableBuffer, MutableBuffer};
use std::io;

/// Bytes of executable memory mapped at a time.
const ARENA_BYTES: usize = 1 << 20;

/// The page-protection calls of an arena, apart so that a test can make them fail.
///
/// Both consume the mapping: when one fails, the mapping is gone (unmapped), as with `mprotect`
/// through `dynasmrt`.
pub(super) trait Protect: Send + Sync {
    /// Makes `buffer` writable and not executable.
    fn writable(&self, buffer: ExecutableBuffer) -> io::Result<MutableBuffer>;
    /// Makes `buffer` executable and not writable.
    fn executable(&self, buffer: MutableBuffer) -> io::Result<ExecutableBuffer>;
}

/// The host's `mprotect`.
struct Mprotect;

impl Protect for Mprotect {
    fn writable(&self, buffer: ExecutableBuffer) -> io::Result<MutableBuffer> {
        buffer.make_mut()
    }

    fn executable(&self, buffer: MutableBuffer) -> io::Result<ExecutableBuffer> {
        buffer.make_exec()
    }
}

/// Executable memory for compiled blocks.
pub(super) struct CodeArena {
    /// Arenas with no room left; never re-protected, so their code stays valid.
    full: Vec<ExecutableBuffer>,
    /// The arena new code goes into; empty before the first block.
    current: ExecutableBuffer,
    /// Bytes of `current` in use.
    used: usize,
    protect: Box<dyn Protect>,
}

impl Default for CodeArena {
    fn default() -> Self {
        Self::with_protect(Box::new(Mprotect))
    }
}

impl CodeArena {
    /// An empty arena whose protection changes go through `protect`.
    pub(super) fn with_protect(protect: Box<dyn Protect>) -> Self {
        Self {
            full: Vec::new(),
            current: ExecutableBuffer::default(),
            used: 0,
            protect,
        }
    }

    /// Copies `code` into executable memory and returns where it starts.
    ///
    /// On an error, code placed earlier may have been unmapped with the mapping that failed to
    /// change protection: the caller must forget every pointer this arena returned (and call
    /// [`Self::clear`]) before running anything.
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
            self.protect.writable(current)?
        };
        let start = self.used;
        buffer.set_len(start + code.len());
        buffer[start..].copy_from_slice(code);
        // Changing protection keeps the address: blocks placed earlier in `current` stay where
        // they are.
        self.current = self.protect.executable(buffer)?;
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
