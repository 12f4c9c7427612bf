//! Loading static RV32IM ELF executables (`docs/protocol.md` section 5).
//!
//! goblin reads the ELF header, the program headers and the section headers. Before that, the
//! identification bytes are checked here, so that a file that is not an ELF32 little-endian RISC-V
//! executable gets an error naming what it is instead of a generic parse failure; after it, the
//! protocol's rules are applied and every rejection names the rule, the segment or section index
//! and the addresses or sizes involved.

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{
    EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELFMAG, EM_RISCV, ET_CORE,
    ET_DYN, ET_EXEC, ET_REL, SELFMAG,
};
use goblin::elf::program_header::{ProgramHeader, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use goblin::elf::section_header::{SectionHeader, SHN_XINDEX, SHT_REL, SHT_RELA};
use goblin::elf::Elf;
use goblin::elf32::header::SIZEOF_EHDR;
use goblin::elf32::program_header::SIZEOF_PHDR;
use goblin::elf32::section_header::SIZEOF_SHDR;
use goblin::strtab::Strtab;

/// End of the guard page `[0, GUARD_PAGE_END)`: nothing may be loaded, fetched, read or written
/// there, and the entry point may not lie in it.
pub const GUARD_PAGE_END: u32 = 0x1000;
/// The initial stack pointer (`x2` of the initial state) and the end of the stack region.
pub const STACK_TOP: u32 = 0x8000_0000;
/// Start of the region reserved for the stack, `[STACK_REGION_START, STACK_TOP)`: no segment may
/// be loaded there.
pub const STACK_REGION_START: u32 = 0x7F00_0000;
/// Most bytes of memory (the sum of the segments' `p_memsz`) an image may occupy: 1 GiB.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// `EF_RISCV_RVC` in `e_flags`: the file contains compressed instructions.
const EF_RISCV_RVC: u32 = 0x1;
/// `EF_RISCV_FLOAT_ABI` in `e_flags`: the float ABI (0 soft, 2 single, 4 double, 6 quad).
const EF_RISCV_FLOAT_ABI: u32 = 0x6;
/// ELF32 header size, as `u64` for offset arithmetic.
const EHDR_SIZE: u64 = SIZEOF_EHDR as u64;
/// ELF32 program header size.
const PHDR_SIZE: u16 = SIZEOF_PHDR as u16;
/// ELF32 section header size.
const SHDR_SIZE: u16 = SIZEOF_SHDR as u16;

/// A program ready to load: its entry point and the bytes of each loadable segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfImage {
    /// Initial program counter (`e_entry`): 4-byte aligned and outside the guard page.
    pub entry: u32,
    /// The `PT_LOAD` segments with a non-zero memory size, in program header order. They do not
    /// overlap each other, the guard page, the stack region or the end of the address space.
    pub segments: Vec<Segment>,
}

impl ElfImage {
    /// A generated program (kernels, tests, benchmarks): the instruction `words` at `code_base`,
    /// which is also the entry point, and `data` (if any) at `data_base`.
    pub fn from_words(code_base: u32, words: &[u32], data_base: u32, data: &[u8]) -> Self {
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut segments = vec![Segment {
            vaddr: code_base,
            mem_size: code.len() as u32,
            data: code,
        }];
        if !data.is_empty() {
            segments.push(Segment {
                vaddr: data_base,
                mem_size: data.len() as u32,
                data: data.to_vec(),
            });
        }
        Self {
            entry: code_base,
            segments,
        }
    }
}

/// One loadable segment: `data` is copied to `vaddr`, and the rest of `mem_size` is zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Address of the segment's first byte (`p_vaddr`).
    pub vaddr: u32,
    /// The segment's bytes from the file (`p_filesz` of them, at most `mem_size`).
    pub data: Vec<u8>,
    /// Bytes the segment occupies in memory (`p_memsz`, not zero).
    pub mem_size: u32,
}

/// Why a file is not a loadable static RV32IM executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with the ELF magic `7f 45 4c 46`.
    #[error("not an ELF file: bad magic (the file does not start with 7f 45 4c 46)")]
    NotElf,
    /// `e_ident[EI_CLASS]` is not ELF32 (for example an ELF64, RV64 build).
    #[error(
        "wrong ELF class {name}: expected ELF32 (1); build for RV32 (-march=rv32im -mabi=ilp32)",
        name = class_name(*.0)
    )]
    WrongClass(u8),
    /// `e_ident[EI_DATA]` is not little-endian.
    #[error(
        "wrong byte order {name}: expected little-endian (ELFDATA2LSB, 1)",
        name = data_name(*.0)
    )]
    WrongEndianness(u8),
    /// `e_machine` is not `EM_RISCV` (243).
    #[error("wrong machine: e_machine is {0}, expected EM_RISCV (243)")]
    WrongMachine(u16),
    /// `e_type` is `ET_REL`: a relocatable object file that was never linked.
    #[error("object file, not linked (e_type ET_REL): link it into a static executable")]
    ObjectFile,
    /// `e_type` is `ET_DYN`: a shared library or position-independent executable.
    #[error(
        "not a static executable: e_type is ET_DYN (a shared library or PIE); \
         link with -static -no-pie"
    )]
    SharedObject,
    /// `e_type` is neither `ET_EXEC`, `ET_REL` nor `ET_DYN` (a core dump, `ET_NONE`, …).
    #[error(
        "not an executable: e_type is {0}{hint}, expected ET_EXEC (2)",
        hint = type_hint(*.0)
    )]
    NotExecutable(u16),
    /// `e_flags` has `EF_RISCV_RVC`: the code may contain compressed (16-bit) instructions, which
    /// the machine does not execute.
    #[error(
        "the file uses compressed instructions (EF_RISCV_RVC in e_flags {0:#x}); \
         build with -march=rv32im"
    )]
    Compressed(u32),
    /// `e_flags` declares a hardware floating-point ABI; the machine has no float registers.
    #[error(
        "the file uses the {abi} floating-point ABI (e_flags {0:#x}); build with -mabi=ilp32",
        abi = float_abi_name(*.0)
    )]
    FloatAbi(u32),
    /// A `PT_INTERP` or `PT_DYNAMIC` program header: the file needs a dynamic loader.
    #[error(
        "program header {index} is {kind}: the file is dynamically linked; link it statically"
    )]
    DynamicLinking {
        /// Index of the program header.
        index: usize,
        /// `"PT_INTERP"` or `"PT_DYNAMIC"`.
        kind: &'static str,
    },
    /// A `SHT_REL` or `SHT_RELA` section: the file still has relocations to apply.
    #[error("section {index} ({name}) holds relocations; only fully linked executables load")]
    Relocations {
        /// Index of the section header.
        index: usize,
        /// The section's name, or `?` where the name table cannot be read.
        name: String,
    },
    /// The ELF header, a header table or a segment's file bytes lie past the end of the file.
    #[error(
        "truncated file: {what} needs bytes {start:#x}..{end:#x} \
         but the file has only {len:#x} bytes"
    )]
    Truncated {
        /// What was being read, e.g. `the program header table` or `segment 2`.
        what: String,
        /// First byte needed.
        start: u64,
        /// One past the last byte needed.
        end: u64,
        /// Length of the file.
        len: usize,
    },
    /// `e_phentsize` or `e_shentsize` is not the ELF32 entry size, so the table cannot be read.
    #[error("{field} is {found}, expected {expected} for ELF32")]
    BadEntrySize {
        /// `"e_phentsize"` or `"e_shentsize"`.
        field: &'static str,
        /// The value in the header.
        found: u16,
        /// The ELF32 size (32 for program headers, 40 for section headers).
        expected: u16,
    },
    /// goblin could not read a header table (for example an extended section count that does not
    /// fit in the file).
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// A segment's file size is larger than its memory size.
    #[error(
        "segment {index}: file size p_filesz {filesz:#x} exceeds memory size p_memsz {memsz:#x}"
    )]
    FileSizeExceedsMemSize {
        /// Index of the program header.
        index: usize,
        /// `p_filesz`.
        filesz: u32,
        /// `p_memsz`.
        memsz: u32,
    },
    /// A segment runs past the end of the 32-bit address space.
    #[error(
        "segment {index} at {vaddr:#x} with p_memsz {memsz:#x} runs past the end of the 4 GiB \
         address space (ends at {end:#x})",
        end = u64::from(*.vaddr) + u64::from(*.memsz)
    )]
    WrapsAddressSpace {
        /// Index of the program header.
        index: usize,
        /// `p_vaddr`.
        vaddr: u32,
        /// `p_memsz`.
        memsz: u32,
    },
    /// A segment overlaps the guard page `[0, GUARD_PAGE_END)`.
    #[error("segment {index} at {start:#x}..{end:#x} overlaps the guard page 0x0..0x1000")]
    InGuardPage {
        /// Index of the program header.
        index: usize,
        /// First address of the segment.
        start: u32,
        /// One past the segment's last address.
        end: u64,
    },
    /// A segment overlaps the stack region `[STACK_REGION_START, STACK_TOP)`.
    #[error(
        "segment {index} at {start:#x}..{end:#x} overlaps the stack region 0x7f000000..0x80000000"
    )]
    InStackRegion {
        /// Index of the program header.
        index: usize,
        /// First address of the segment.
        start: u32,
        /// One past the segment's last address.
        end: u64,
    },
    /// Two loadable segments share addresses.
    #[error("segments {first} and {second} overlap at {start:#x}..{end:#x}")]
    Overlap {
        /// Index of the program header that comes first in the file.
        first: usize,
        /// Index of the other one.
        second: usize,
        /// First shared address.
        start: u32,
        /// One past the last shared address.
        end: u64,
    },
    /// The segments' memory sizes add up to more than [`MAX_IMAGE_BYTES`].
    #[error(
        "image too large: the segments need {total:#x} bytes of memory, more than the limit of \
         {MAX_IMAGE_BYTES:#x} (1 GiB)"
    )]
    TooLarge {
        /// Sum of `p_memsz` over the loadable segments.
        total: u64,
    },
    /// The entry point is not a multiple of 4.
    #[error("entry point {0:#x} is not 4-byte aligned")]
    MisalignedEntry(u32),
    /// The entry point lies in the guard page.
    #[error("entry point {0:#x} is in the guard page 0x0..0x1000")]
    EntryInGuardPage(u32),
}

fn class_name(class: u8) -> String {
    match class {
        ELFCLASS64 => "ELF64 (2)".into(),
        c => format!("{c}"),
    }
}

fn data_name(data: u8) -> String {
    match data {
        ELFDATA2MSB => "big-endian (ELFDATA2MSB, 2)".into(),
        d => format!("{d}"),
    }
}

fn type_hint(e_type: u16) -> &'static str {
    match e_type {
        ET_CORE => " (ET_CORE, a core dump)",
        0 => " (ET_NONE)",
        _ => "",
    }
}

fn float_abi_name(flags: u32) -> &'static str {
    match flags & EF_RISCV_FLOAT_ABI {
        0x2 => "single-precision (ilp32f)",
        0x4 => "double-precision (ilp32d)",
        _ => "quad-precision (ilp32q)",
    }
}

/// A field of an ELF32 file, which goblin widens to 64 bits.
fn narrow(value: u64) -> u32 {
    u32::try_from(value).expect("an ELF32 field fits in 32 bits")
}

/// Checks that `len` bytes at `start` lie inside the file.
fn check_range(
    bytes: &[u8],
    what: impl FnOnce() -> String,
    start: u64,
    len: u64,
) -> Result<(), ElfError> {
    let end = start + len;
    if end > bytes.len() as u64 {
        return Err(ElfError::Truncated {
            what: what(),
            start,
            end,
            len: bytes.len(),
        });
    }
    Ok(())
}

/// Parses and checks a static ELF32 little-endian RISC-V executable (`docs/protocol.md` section 5).
///
/// The checks run in this order, and the first failure is returned: identification bytes (magic,
/// class, byte order), header length, `e_machine`, `e_type`, `e_flags`, entry point, header tables,
/// dynamic linking, relocation sections, then each `PT_LOAD` segment with a non-zero memory size in
/// program header order (sizes, file range, address space, guard page, stack region), then overlaps
/// between segments and the total size.
pub fn parse_elf(bytes: &[u8]) -> Result<ElfImage, ElfError> {
    // Identification bytes first: goblin would only say "malformed" about these.
    if bytes.len() < SELFMAG || bytes[..SELFMAG] != ELFMAG[..] {
        return Err(ElfError::NotElf);
    }
    if let Some(&class) = bytes.get(EI_CLASS) {
        if class != ELFCLASS32 {
            return Err(ElfError::WrongClass(class));
        }
    }
    if let Some(&data) = bytes.get(EI_DATA) {
        if data != ELFDATA2LSB {
            return Err(ElfError::WrongEndianness(data));
        }
    }
    check_range(bytes, || "the ELF32 header".into(), 0, EHDR_SIZE)?;
    let header = Elf::parse_header(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;

    if header.e_machine != EM_RISCV {
        return Err(ElfError::WrongMachine(header.e_machine));
    }
    match header.e_type {
        ET_EXEC => {}
        ET_REL => return Err(ElfError::ObjectFile),
        ET_DYN => return Err(ElfError::SharedObject),
        other => return Err(ElfError::NotExecutable(other)),
    }
    if header.e_flags & EF_RISCV_RVC != 0 {
        return Err(ElfError::Compressed(header.e_flags));
    }
    if header.e_flags & EF_RISCV_FLOAT_ABI != 0 {
        return Err(ElfError::FloatAbi(header.e_flags));
    }
    let entry = narrow(header.e_entry);
    if !entry.is_multiple_of(4) {
        return Err(ElfError::MisalignedEntry(entry));
    }
    if entry < GUARD_PAGE_END {
        return Err(ElfError::EntryInGuardPage(entry));
    }

    // Header tables: sizes and bounds are checked here so that a short file says what is missing.
    let ctx = Ctx::new(Container::Little, Endian::Little);
    if header.e_phnum > 0 && header.e_phentsize != PHDR_SIZE {
        return Err(ElfError::BadEntrySize {
            field: "e_phentsize",
            found: header.e_phentsize,
            expected: PHDR_SIZE,
        });
    }
    if header.e_phnum > 0 {
        check_range(
            bytes,
            || format!("the program header table (e_phnum = {})", header.e_phnum),
            header.e_phoff,
            u64::from(header.e_phnum) * u64::from(PHDR_SIZE),
        )?;
    }
    let program_headers =
        ProgramHeader::parse(bytes, header.e_phoff as usize, header.e_phnum as usize, ctx)
            .map_err(|e| ElfError::Malformed(format!("program header table: {e}")))?;

    // `e_shoff = 0` means no section headers; `e_shnum = 0` with a table means that the count is in
    // the first entry (extended numbering), which goblin reads.
    let sections = if header.e_shoff == 0 {
        Vec::new()
    } else {
        if header.e_shentsize != SHDR_SIZE {
            return Err(ElfError::BadEntrySize {
                field: "e_shentsize",
                found: header.e_shentsize,
                expected: SHDR_SIZE,
            });
        }
        // At least the first entry, which holds the count under extended numbering.
        check_range(
            bytes,
            || format!("the section header table (e_shnum = {})", header.e_shnum),
            header.e_shoff,
            u64::from(header.e_shnum.max(1)) * u64::from(SHDR_SIZE),
        )?;
        SectionHeader::parse(bytes, header.e_shoff as usize, header.e_shnum as usize, ctx)
            .map_err(|e| ElfError::Malformed(format!("section header table: {e}")))?
    };

    for (index, ph) in program_headers.iter().enumerate() {
        let kind = match ph.p_type {
            PT_INTERP => "PT_INTERP",
            PT_DYNAMIC => "PT_DYNAMIC",
            _ => continue,
        };
        return Err(ElfError::DynamicLinking { index, kind });
    }
    if let Some((index, sh)) = sections
        .iter()
        .enumerate()
        .find(|(_, s)| s.sh_type == SHT_REL || s.sh_type == SHT_RELA)
    {
        let name = section_name(bytes, &sections, header.e_shstrndx, sh.sh_name);
        return Err(ElfError::Relocations { index, name });
    }

    // Each loadable segment on its own.
    let mut loads = Vec::new();
    for (index, ph) in program_headers.iter().enumerate() {
        if ph.p_type != PT_LOAD || ph.p_memsz == 0 {
            continue;
        }
        let (vaddr, filesz, memsz) = (narrow(ph.p_vaddr), narrow(ph.p_filesz), narrow(ph.p_memsz));
        if filesz > memsz {
            return Err(ElfError::FileSizeExceedsMemSize {
                index,
                filesz,
                memsz,
            });
        }
        check_range(
            bytes,
            || format!("segment {index}"),
            ph.p_offset,
            ph.p_filesz,
        )?;
        let end = u64::from(vaddr) + u64::from(memsz);
        if end > 1 << 32 {
            return Err(ElfError::WrapsAddressSpace {
                index,
                vaddr,
                memsz,
            });
        }
        if vaddr < GUARD_PAGE_END {
            return Err(ElfError::InGuardPage {
                index,
                start: vaddr,
                end,
            });
        }
        if vaddr < STACK_TOP && end > u64::from(STACK_REGION_START) {
            return Err(ElfError::InStackRegion {
                index,
                start: vaddr,
                end,
            });
        }
        loads.push((index, ph));
    }

    // Overlaps: sorted by start address, any overlap shows up between neighbours.
    let mut ranges: Vec<(u64, u64, usize)> = loads
        .iter()
        .map(|&(index, ph)| (ph.p_vaddr, ph.p_vaddr + ph.p_memsz, index))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((_, end_a, a), (start_b, end_b, b)) = (pair[0], pair[1]);
        if start_b < end_a {
            return Err(ElfError::Overlap {
                first: a.min(b),
                second: a.max(b),
                start: narrow(start_b),
                end: end_a.min(end_b),
            });
        }
    }
    let total: u64 = loads.iter().map(|(_, ph)| ph.p_memsz).sum();
    if total > MAX_IMAGE_BYTES {
        return Err(ElfError::TooLarge { total });
    }

    let segments = loads
        .iter()
        .map(|(_, ph)| Segment {
            vaddr: narrow(ph.p_vaddr),
            data: bytes[ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize].to_vec(),
            mem_size: narrow(ph.p_memsz),
        })
        .collect();
    Ok(ElfImage { entry, segments })
}

/// The name of a section for an error message, or `?` where the name table cannot be read.
fn section_name(bytes: &[u8], sections: &[SectionHeader], shstrndx: u16, sh_name: usize) -> String {
    let index = if u32::from(shstrndx) == SHN_XINDEX {
        sections.first().map_or(usize::MAX, |s| s.sh_link as usize)
    } else {
        usize::from(shstrndx)
    };
    sections
        .get(index)
        .and_then(|table| {
            Strtab::parse(bytes, table.sh_offset as usize, table.sh_size as usize, 0).ok()
        })
        .and_then(|names| names.get_at(sh_name).map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::program_header::{PT_GNU_STACK, PT_NOTE};
    use goblin::elf::section_header::{SHT_PROGBITS, SHT_STRTAB};
    use std::path::PathBuf;
    use std::process::Command;

    /// One program header for [`Builder`]; its bytes follow the program header table.
    #[derive(Clone)]
    struct Seg {
        p_type: u32,
        vaddr: u32,
        data: Vec<u8>,
        memsz: u32,
        /// `p_offset` to write instead of the real offset of `data`.
        offset: Option<u32>,
    }

    fn load(vaddr: u32, data: &[u8], memsz: u32) -> Seg {
        Seg {
            p_type: PT_LOAD,
            vaddr,
            data: data.to_vec(),
            memsz,
            offset: None,
        }
    }

    fn other(p_type: u32) -> Seg {
        Seg {
            p_type,
            vaddr: 0,
            data: vec![],
            memsz: 0,
            offset: None,
        }
    }

    /// A test-only ELF32 writer: header, program headers, segment bytes, and optionally a section
    /// name table and section headers (null section, the listed ones, `.shstrtab`). Every field is
    /// a knob; `post` edits the finished bytes.
    struct Builder {
        class: u8,
        data: u8,
        e_type: u16,
        machine: u16,
        flags: u32,
        entry: u32,
        phentsize: u16,
        segments: Vec<Seg>,
        /// (name, sh_type) of sections after the null one.
        sections: Vec<(&'static str, u32)>,
        post: fn(&mut Vec<u8>),
    }

    const CODE: [u8; 8] = [0x13, 0, 0, 0, 0x73, 0, 0, 0]; // nop; ecall

    impl Builder {
        fn new() -> Self {
            Self {
                class: ELFCLASS32,
                data: ELFDATA2LSB,
                e_type: ET_EXEC,
                machine: EM_RISCV,
                flags: 0,
                entry: 0x1_0000,
                phentsize: PHDR_SIZE,
                segments: vec![load(0x1_0000, &CODE, 8)],
                sections: vec![],
                post: |_| {},
            }
        }

        fn build(&self) -> Vec<u8> {
            fn put(out: &mut [u8], at: usize, field: &[u8]) {
                out[at..at + field.len()].copy_from_slice(field);
            }
            let mut out = vec![0u8; SIZEOF_EHDR];
            put(&mut out, 0, ELFMAG);
            out[EI_CLASS] = self.class;
            out[EI_DATA] = self.data;
            out[6] = 1; // EI_VERSION
            put(&mut out, 16, &self.e_type.to_le_bytes());
            put(&mut out, 18, &self.machine.to_le_bytes());
            put(&mut out, 20, &1u32.to_le_bytes());
            put(&mut out, 24, &self.entry.to_le_bytes());
            put(&mut out, 28, &(SIZEOF_EHDR as u32).to_le_bytes());
            put(&mut out, 36, &self.flags.to_le_bytes());
            put(&mut out, 40, &(SIZEOF_EHDR as u16).to_le_bytes());
            put(&mut out, 42, &self.phentsize.to_le_bytes());
            put(&mut out, 44, &(self.segments.len() as u16).to_le_bytes());
            put(&mut out, 46, &SHDR_SIZE.to_le_bytes());

            let mut data_offset = SIZEOF_EHDR + SIZEOF_PHDR * self.segments.len();
            let mut payload = Vec::new();
            for seg in &self.segments {
                let mut ph = [0u8; SIZEOF_PHDR];
                let offset = seg.offset.unwrap_or(data_offset as u32);
                put(&mut ph, 0, &seg.p_type.to_le_bytes());
                put(&mut ph, 4, &offset.to_le_bytes());
                put(&mut ph, 8, &seg.vaddr.to_le_bytes());
                put(&mut ph, 12, &seg.vaddr.to_le_bytes());
                put(&mut ph, 16, &(seg.data.len() as u32).to_le_bytes());
                put(&mut ph, 20, &seg.memsz.to_le_bytes());
                put(&mut ph, 24, &7u32.to_le_bytes()); // RWX
                put(&mut ph, 28, &4u32.to_le_bytes());
                out.extend_from_slice(&ph);
                payload.extend_from_slice(&seg.data);
                data_offset += seg.data.len();
            }
            out.extend_from_slice(&payload);

            if !self.sections.is_empty() {
                let mut names = vec![0u8];
                let mut headers = vec![[0u8; SIZEOF_SHDR]];
                let all = self
                    .sections
                    .iter()
                    .copied()
                    .chain([(".shstrtab", SHT_STRTAB)]);
                for (name, sh_type) in all {
                    let mut sh = [0u8; SIZEOF_SHDR];
                    put(&mut sh, 0, &(names.len() as u32).to_le_bytes());
                    put(&mut sh, 4, &sh_type.to_le_bytes());
                    headers.push(sh);
                    names.extend_from_slice(name.as_bytes());
                    names.push(0);
                }
                let names_offset = out.len() as u32;
                let strtab = headers.last_mut().expect("has .shstrtab");
                put(strtab, 16, &names_offset.to_le_bytes());
                put(strtab, 20, &(names.len() as u32).to_le_bytes());
                out.extend_from_slice(&names);
                let shoff = out.len() as u32;
                put(&mut out, 32, &shoff.to_le_bytes());
                put(&mut out, 48, &(headers.len() as u16).to_le_bytes());
                put(&mut out, 50, &(headers.len() as u16 - 1).to_le_bytes());
                for sh in &headers {
                    out.extend_from_slice(sh);
                }
            }
            (self.post)(&mut out);
            out
        }
    }

    fn parse(edit: fn(&mut Builder)) -> Result<ElfImage, ElfError> {
        let mut b = Builder::new();
        edit(&mut b);
        parse_elf(&b.build())
    }

    #[test]
    fn valid_image() {
        let image = parse(|b| {
            b.entry = 0x1_0004;
            b.segments.push(other(PT_NOTE));
            b.segments.push(load(0x2_0000, &[1, 2, 3], 0x1000)); // .data + .bss
            b.segments.push(load(0x3_0000, &[9, 9], 0)); // zero memsz: ignored
            b.segments.push(other(PT_GNU_STACK));
            b.sections = vec![(".text", SHT_PROGBITS), (".data", SHT_PROGBITS)];
        })
        .unwrap();
        assert_eq!(
            image,
            ElfImage {
                entry: 0x1_0004,
                segments: vec![
                    Segment {
                        vaddr: 0x1_0000,
                        data: CODE.to_vec(),
                        mem_size: 8
                    },
                    Segment {
                        vaddr: 0x2_0000,
                        data: vec![1, 2, 3],
                        mem_size: 0x1000
                    },
                ],
            }
        );
    }

    /// Images right at the limits load.
    #[test]
    fn edge_cases_accepted() {
        let cases: &[(&str, fn(&mut Builder))] = &[
            ("segment starting at the guard page's end", |b| {
                b.segments.push(load(GUARD_PAGE_END, &[], 4));
            }),
            ("segment ending at the stack region", |b| {
                b.segments.push(load(STACK_REGION_START - 0x10, &[], 0x10));
            }),
            ("segment starting at the stack top", |b| {
                b.segments.push(load(STACK_TOP, &[], 0x10))
            }),
            ("segment ending at 4 GiB", |b| {
                b.segments.push(load(0xffff_f000, &[], 0x1000))
            }),
            ("adjacent segments", |b| {
                b.segments.push(load(0x1_0008, &[], 8))
            }),
            ("exactly 1 GiB", |b| {
                b.segments.push(load(0x1000_0000, &[], (1 << 30) - 8))
            }),
            ("entry outside every segment", |b| b.entry = 0x5000_0000),
            ("non-relocation sections", |b| {
                b.sections = vec![(".text", SHT_PROGBITS)]
            }),
            ("zero-memsz segment in the guard page", |b| {
                b.segments.push(load(0, &[], 0))
            }),
            ("no segments at all", |b| b.segments.clear()),
            ("no program headers and a junk e_phoff", |b| {
                b.segments.clear();
                b.post = |f| f[28..32].copy_from_slice(&0xffff_0000u32.to_le_bytes());
            }),
        ];
        for (name, edit) in cases {
            if let Err(e) = parse(*edit) {
                panic!("{name}: rejected with {e}");
            }
        }
    }

    /// Every error, with the substring its message must contain.
    #[test]
    fn errors() {
        use ElfError as E;
        let cases: &[(&str, fn(&mut Builder), ElfError, &str)] = &[
            ("ELF64", |b| b.class = ELFCLASS64, E::WrongClass(2), "ELF64"),
            (
                "class 0",
                |b| b.class = 0,
                E::WrongClass(0),
                "expected ELF32",
            ),
            (
                "big-endian",
                |b| b.data = ELFDATA2MSB,
                E::WrongEndianness(2),
                "big-endian",
            ),
            (
                "x86-64",
                |b| b.machine = 62,
                E::WrongMachine(62),
                "e_machine is 62",
            ),
            (
                "object file",
                |b| b.e_type = ET_REL,
                E::ObjectFile,
                "object file, not linked",
            ),
            (
                "PIE",
                |b| b.e_type = ET_DYN,
                E::SharedObject,
                "not a static executable",
            ),
            (
                "core dump",
                |b| b.e_type = ET_CORE,
                E::NotExecutable(4),
                "core dump",
            ),
            (
                "RVC",
                |b| b.flags = EF_RISCV_RVC,
                E::Compressed(1),
                "compressed instructions",
            ),
            (
                "RVC + double",
                |b| b.flags = 0x5,
                E::Compressed(5),
                "-march=rv32im",
            ),
            (
                "single-float ABI",
                |b| b.flags = 0x2,
                E::FloatAbi(2),
                "ilp32f",
            ),
            (
                "double-float ABI",
                |b| b.flags = 0x4,
                E::FloatAbi(4),
                "ilp32d",
            ),
            (
                "quad-float ABI",
                |b| b.flags = 0x6,
                E::FloatAbi(6),
                "ilp32q",
            ),
            (
                "misaligned entry",
                |b| b.entry = 0x1_0002,
                E::MisalignedEntry(0x1_0002),
                "0x10002",
            ),
            (
                "entry 0",
                |b| b.entry = 0,
                E::EntryInGuardPage(0),
                "guard page",
            ),
            (
                "entry in guard page",
                |b| b.entry = 0xffc,
                E::EntryInGuardPage(0xffc),
                "0xffc",
            ),
            (
                "PT_INTERP",
                |b| b.segments.push(other(PT_INTERP)),
                E::DynamicLinking {
                    index: 1,
                    kind: "PT_INTERP",
                },
                "program header 1 is PT_INTERP",
            ),
            (
                "PT_DYNAMIC",
                |b| b.segments.insert(0, other(PT_DYNAMIC)),
                E::DynamicLinking {
                    index: 0,
                    kind: "PT_DYNAMIC",
                },
                "dynamically linked",
            ),
            (
                "RELA section",
                |b| b.sections = vec![(".text", SHT_PROGBITS), (".rela.text", SHT_RELA)],
                E::Relocations {
                    index: 2,
                    name: ".rela.text".into(),
                },
                "section 2 (.rela.text)",
            ),
            (
                "REL section",
                |b| b.sections = vec![(".rel.dyn", SHT_REL)],
                E::Relocations {
                    index: 1,
                    name: ".rel.dyn".into(),
                },
                "relocations",
            ),
            (
                "header cut short",
                |b| b.post = |f| f.truncate(40),
                E::Truncated {
                    what: "the ELF32 header".into(),
                    start: 0,
                    end: 52,
                    len: 40,
                },
                "needs bytes 0x0..0x34",
            ),
            (
                "program header table cut short",
                |b| b.post = |f| f.truncate(60),
                E::Truncated {
                    what: "the program header table (e_phnum = 1)".into(),
                    start: 52,
                    end: 84,
                    len: 60,
                },
                "truncated file",
            ),
            (
                "section header table cut short",
                |b| {
                    b.sections = vec![(".text", SHT_PROGBITS)];
                    b.post = |f| {
                        f.pop();
                    };
                },
                E::Truncated {
                    what: "the section header table (e_shnum = 3)".into(),
                    start: 109,
                    end: 229,
                    len: 228,
                },
                "section header table",
            ),
            (
                "segment bytes cut short",
                |b| b.post = |f| f.truncate(90),
                E::Truncated {
                    what: "segment 0".into(),
                    start: 84,
                    end: 92,
                    len: 90,
                },
                "segment 0 needs bytes 0x54..0x5c",
            ),
            (
                "segment offset past the end",
                |b| b.segments[0].offset = Some(0x10_0000),
                E::Truncated {
                    what: "segment 0".into(),
                    start: 0x10_0000,
                    end: 0x10_0008,
                    len: 92,
                },
                "only 0x5c",
            ),
            (
                "program header entry size",
                |b| b.phentsize = 16,
                E::BadEntrySize {
                    field: "e_phentsize",
                    found: 16,
                    expected: 32,
                },
                "e_phentsize is 16",
            ),
            (
                "section header entry size",
                |b| {
                    b.sections = vec![(".text", SHT_PROGBITS)];
                    b.post = |f| f[46] = 64;
                },
                E::BadEntrySize {
                    field: "e_shentsize",
                    found: 64,
                    expected: 40,
                },
                "expected 40",
            ),
            (
                "extended section count past the end",
                |b| {
                    b.sections = vec![(".text", SHT_PROGBITS)];
                    b.post = |f| {
                        // e_shnum = 0: the count is in the null section's sh_size.
                        f[48..50].copy_from_slice(&0u16.to_le_bytes());
                        let shoff = u32::from_le_bytes(f[32..36].try_into().unwrap()) as usize;
                        f[shoff + 20..shoff + 24].copy_from_slice(&5000u32.to_le_bytes());
                    };
                },
                E::Malformed(format!(
                    "section header table: {}",
                    goblin::error::Error::BufferTooShort(5000, "section headers")
                )),
                "malformed ELF",
            ),
            (
                "filesz > memsz",
                |b| b.segments[0].memsz = 4,
                E::FileSizeExceedsMemSize {
                    index: 0,
                    filesz: 8,
                    memsz: 4,
                },
                "segment 0: file size p_filesz 0x8 exceeds memory size p_memsz 0x4",
            ),
            (
                "past 4 GiB",
                |b| b.segments.push(load(0xffff_f000, &[], 0x1001)),
                E::WrapsAddressSpace {
                    index: 1,
                    vaddr: 0xffff_f000,
                    memsz: 0x1001,
                },
                "ends at 0x100000001",
            ),
            (
                "at address 0",
                |b| b.segments.push(load(0, &[1], 4)),
                E::InGuardPage {
                    index: 1,
                    start: 0,
                    end: 4,
                },
                "segment 1 at 0x0..0x4 overlaps the guard page",
            ),
            (
                "ending in the guard page's last byte",
                |b| b.segments.push(load(0xfff, &[], 1)),
                E::InGuardPage {
                    index: 1,
                    start: 0xfff,
                    end: 0x1000,
                },
                "guard page",
            ),
            (
                "inside the stack region",
                |b| b.segments.push(load(0x7f80_0000, &[], 16)),
                E::InStackRegion {
                    index: 1,
                    start: 0x7f80_0000,
                    end: 0x7f80_0010,
                },
                "segment 1 at 0x7f800000..0x7f800010 overlaps the stack region",
            ),
            (
                "running into the stack region",
                |b| b.segments.push(load(0x7eff_fff0, &[], 0x20)),
                E::InStackRegion {
                    index: 1,
                    start: 0x7eff_fff0,
                    end: 0x7f00_0010,
                },
                "stack region",
            ),
            (
                "spanning the stack region",
                |b| b.segments.push(load(0x7000_0000, &[], 0x2000_0000)),
                E::InStackRegion {
                    index: 1,
                    start: 0x7000_0000,
                    end: 0x9000_0000,
                },
                "stack region",
            ),
            (
                "overlap",
                |b| b.segments.push(load(0x1_0004, &[], 16)),
                E::Overlap {
                    first: 0,
                    second: 1,
                    start: 0x1_0004,
                    end: 0x1_0008,
                },
                "segments 0 and 1 overlap at 0x10004..0x10008",
            ),
            (
                "overlap with a later segment placed first",
                |b| {
                    b.segments.push(load(0x4_0000, &[], 0x100));
                    b.segments.push(load(0x2_0000, &[], 0x1_0000));
                    b.segments.push(load(0x2_8000, &[], 0x10));
                },
                E::Overlap {
                    first: 2,
                    second: 3,
                    start: 0x2_8000,
                    end: 0x2_8010,
                },
                "segments 2 and 3",
            ),
            (
                "same start",
                |b| b.segments.push(load(0x1_0000, &[], 4)),
                E::Overlap {
                    first: 0,
                    second: 1,
                    start: 0x1_0000,
                    end: 0x1_0004,
                },
                "overlap",
            ),
            (
                "too large",
                |b| {
                    b.segments.push(load(0x1000_0000, &[], 0x3000_0000));
                    b.segments.push(load(0x8000_0000, &[], 0x1000_0000));
                },
                E::TooLarge { total: 0x4000_0008 },
                "image too large",
            ),
        ];
        for (name, edit, expected, snippet) in cases {
            let err = parse(*edit).expect_err(name);
            assert_eq!(&err, expected, "{name}");
            let message = err.to_string();
            assert!(
                message.contains(snippet),
                "{name}: {message:?} lacks {snippet:?}"
            );
        }
    }

    #[test]
    fn not_elf() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x7fEL",
            b"#!/bin/sh\necho hi\n",
            b"MZ\x90\0",
            b"\x7fELG\x01\x01",
        ];
        for bytes in cases {
            assert_eq!(parse_elf(bytes), Err(ElfError::NotElf), "{bytes:?}");
        }
        // Identification bytes are judged as soon as they are there, before the length.
        assert_eq!(parse_elf(b"\x7fELF\x02"), Err(ElfError::WrongClass(2)));
        assert_eq!(
            parse_elf(b"\x7fELF\x01\x02"),
            Err(ElfError::WrongEndianness(2))
        );
        assert!(matches!(
            parse_elf(b"\x7fELF\x01\x01"),
            Err(ElfError::Truncated { .. })
        ));
    }

    /// Every prefix of a valid file is rejected, and without a panic.
    #[test]
    fn every_prefix_is_rejected() {
        let file = Builder {
            sections: vec![(".text", SHT_PROGBITS)],
            ..Builder::new()
        }
        .build();
        assert!(parse_elf(&file).is_ok());
        for len in 0..file.len() {
            assert!(parse_elf(&file[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    /// Overlap detection sorts, so thousands of segments are cheap.
    #[test]
    fn many_segments() {
        let mut b = Builder::new();
        b.segments = (0..4000u32)
            .rev()
            .map(|k| load(0x1_0000 + 0x100 * k, &[k as u8], 0x100))
            .collect();
        b.entry = 0x1_0000;
        let image = parse_elf(&b.build()).unwrap();
        assert_eq!(image.segments.len(), 4000);
        assert_eq!(
            image.segments[0],
            Segment {
                vaddr: 0x1_0000 + 0x100 * 3999,
                data: vec![159],
                mem_size: 0x100
            }
        );
    }

    /// Compiles a tiny freestanding C program with Debian's RISC-V cross compiler
    /// (`gcc-riscv64-unknown-elf`, installed by `scripts/setup.sh` and in CI).
    fn cross_compile(march: &str) -> Vec<u8> {
        const SOURCE: &str = r#"
            volatile int seed = 7;
            int table[64];
            void _start(void) {
                for (int i = 0; i < 64; i++) table[i] = seed * i;
                register int a0 __asm__("a0") = table[63];
                register int a7 __asm__("a7") = 93;
                __asm__ volatile("ecall" : : "r"(a0), "r"(a7));
                for (;;) {}
            }
        "#;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "opml-elf-test-{}-{march}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, out) = (dir.join("tiny.c"), dir.join("tiny.elf"));
        std::fs::write(&src, SOURCE).unwrap();
        let result = Command::new("riscv64-unknown-elf-gcc")
            .arg(format!("-march={march}"))
            .args([
                "-mabi=ilp32",
                "-nostdlib",
                "-ffreestanding",
                "-static",
                "-O2",
                "-o",
            ])
            .arg(&out)
            .arg(&src)
            .output();
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                panic!(
                    "cannot run riscv64-unknown-elf-gcc ({e}): install the RISC-V cross compiler \
                     (Debian/Ubuntu: apt-get install gcc-riscv64-unknown-elf, or scripts/setup.sh)"
                );
            }
        };
        assert!(
            output.status.success(),
            "riscv64-unknown-elf-gcc -march={march} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let bytes = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }

    #[test]
    fn real_rv32im_executable_parses() {
        let image = parse_elf(&cross_compile("rv32im")).unwrap();
        let code = image
            .segments
            .iter()
            .find(|s| (s.vaddr..s.vaddr + s.mem_size).contains(&image.entry))
            .expect("the entry point lies in a segment");
        let at = (image.entry - code.vaddr) as usize;
        let first = u32::from_le_bytes(code.data[at..at + 4].try_into().unwrap());
        assert_eq!(
            first & 3,
            3,
            "the first instruction {first:#010x} is a 32-bit one"
        );
        assert!(
            image
                .segments
                .iter()
                .any(|s| s.data.len() < s.mem_size as usize),
            "the .bss array makes some segment larger in memory than in the file: {image:?}"
        );
    }

    #[test]
    fn real_rv32imc_executable_is_rejected() {
        let err = parse_elf(&cross_compile("rv32imc")).unwrap_err();
        assert!(
            matches!(err, ElfError::Compressed(flags) if flags & EF_RISCV_RVC != 0),
            "{err}"
        );
    }
}
