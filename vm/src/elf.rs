//! Placeholder: the ELF loader is being written.
/// Loaded program.
#[derive(Debug, Clone)]
pub struct ElfImage {
    /// Entry point.
    pub entry: u32,
    /// Loadable segments.
    pub segments: Vec<Segment>,
}
/// One PT_LOAD segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Virtual address.
    pub vaddr: u32,
    /// File bytes (p_filesz).
    pub data: Vec<u8>,
    /// Size in memory (p_memsz).
    pub mem_size: u32,
}
/// Loader error.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Placeholder.
    #[error("not implemented")]
    Todo,
}
/// Parses an ELF.
pub fn parse_elf(_bytes: &[u8]) -> Result<ElfImage, ElfError> {
    Err(ElfError::Todo)
}
