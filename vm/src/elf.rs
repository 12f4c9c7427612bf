//! Loading static RV32IM ELF executables (`docs/protocol.md` section 5), with a clear error for
//! anything else. Parsing is goblin's; the checks are ours.

use goblin::elf::header::{
    EI_CLASS, EI_DATA, ELFCLASS32, ELFDATA2LSB, EM_RISCV, ET_DYN, ET_EXEC, ET_REL,
};
use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP, PT_LOAD};
use goblin::elf::section_header::{SHT_REL, SHT_RELA};
use goblin::elf::Elf;

/// Addresses below this are the guard page: nothing may be loaded, fetched, read or written there.
pub const GUARD_PAGE_END: u32 = 0x1000;
/// The initial stack pointer.
pub const STACK_TOP: u32 = 0x8000_0000;
/// Start of the region reserved for the stack, `[STACK_REGION_START, STACK_TOP)`.
pub const STACK_REGION_START: u32 = 0x7F00_0000;
/// Most bytes of memory an image may occupy.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;
/// `EF_RISCV_RVC`: the file uses compressed instructions.
const EF_RISCV_RVC: u32 = 0x1;
/// `EF_RISCV_FLOAT_ABI`: the file passes floats in float registers.
const EF_RISCV_FLOAT_ABI: u32 = 0x6;

/// A program ready to load: entry point and the bytes of each loadable segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfImage {
    /// Initial program counter.
    pub entry: u32,
    /// `PT_LOAD` segments with a non-zero memory size, in file order.
    pub segments: Vec<Segment>,
}

/// One loadable segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Address of the first byte.
    pub vaddr: u32,
    /// The bytes from the file (`p_filesz`); the rest of `mem_size` is zero.
    pub data: Vec<u8>,
    /// Bytes the segment occupies in memory (`p_memsz`).
    pub mem_size: u32,
}

/// Why a file is not a loadable RV32IM executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with the ELF magic.
    #[error("not an ELF file (bad magic)")]
    NotElf,
    /// ELF64 or another class.
    #[error("wrong ELF class {0}: expected ELF32 (RV32)")]
    WrongClass(u8),
    /// Big-endian or unknown data encoding.
    #[error("wrong ELF data encoding {0}: expected little-endian")]
    WrongEndianness(u8),
    /// Not built for RISC-V.
    #[error("wrong machine {0}: expected RISC-V (243)")]
    WrongMachine(u16),
    /// An object file, shared object or core dump.
    #[error("ELF type {0} is not a static executable (ET_EXEC){kind}", kind = elf_type_hint(*.0))]
    NotExecutable(u16),
    /// Built for the C extension.
    #[error("the file uses compressed instructions (EF_RISCV_RVC); build with -march=rv32im")]
    Compressed,
    /// Built for a float ABI.
    #[error("the file uses a floating-point ABI (flags {0:#x}); build with -mabi=ilp32")]
    FloatAbi(u32),
    /// Needs a dynamic loader.
    #[error("the file is dynamically linked (PT_INTERP or PT_DYNAMIC); link it statically")]
    Dynamic,
    /// Has relocation sections.
    #[error("section {0} holds relocations; only fully linked executables load")]
    Relocations(String),
    /// A header, table or segment lies past the end of the file.
    #[error("truncated file: {what} needs bytes {start}..{end} but the file has {len}")]
    Truncated {
        /// What was being read.
        what: String,
        /// First byte needed.
        start: u64,
        /// One past the last byte needed.
        end: u64,
        /// File length.
        len: usize,
    },
    /// goblin could not parse the file.
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// A segment's file size exceeds its memory size.
    #[error("segment {index}: file size {filesz} exceeds memory size {memsz}")]
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A segment runs past 4 GiB, or into the guard page or the stack region.
    #[error("segment {index} at {start:#x}..{end:#x} lies outside the loadable memory ({why})")]
    BadAddress {
        /// Program header index.
        index: usize,
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// Two segments share addresses.
    #[error("segments {first} and {second} overlap at {start:#x}..{end:#x}")]
    Overlap {
        /// Program header index of one.
        first: usize,
        /// Program header index of the other.
        second: usize,
        /// Start of the shared range.
        start: u64,
        /// End of the shared range.
        end: u64,
    },
    /// The segments take more than [`MAX_IMAGE_BYTES`].
    #[error("the image needs {0} bytes of memory, more than the limit of {MAX_IMAGE_BYTES}")]
    TooLarge(u64),
    /// The entry point cannot be executed.
    #[error("entry point {0:#x} is {1}")]
    BadEntry(u64, &'static str),
    /// No loadable segment.
    #[error("no loadable segment")]
    Empty,
}

fn elf_type_hint(e_type: u16) -> &'static str {
    match e_type {
        ET_REL => ": an unlinked object file",
        ET_DYN => ": a shared object or PIE",
        _ => "",
    }
}

/// Parses and checks a static ELF32 RISC-V executable.
pub fn parse_elf(bytes: &[u8]) -> Result<ElfImage, ElfError> {
    if bytes.len() < 4 || bytes[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let truncated = |what: &str, start: u64, end: u64| ElfError::Truncated {
        what: what.into(),
        start,
        end,
        len: bytes.len(),
    };
    if bytes.len() < 52 {
        return Err(truncated("the ELF32 header", 0, 52));
    }
    if bytes[EI_CLASS] != ELFCLASS32 {
        return Err(ElfError::WrongClass(bytes[EI_CLASS]));
    }
    if bytes[EI_DATA] != ELFDATA2LSB {
        return Err(ElfError::WrongEndianness(bytes[EI_DATA]));
    }
    let half = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let word = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let (e_type, e_machine, e_flags) = (half(16), half(18), word(36));
    if e_machine != EM_RISCV {
        return Err(ElfError::WrongMachine(e_machine));
    }
    if e_type != ET_EXEC {
        return Err(ElfError::NotExecutable(e_type));
    }
    if e_flags & EF_RISCV_RVC != 0 {
        return Err(ElfError::Compressed);
    }
    if e_flags & EF_RISCV_FLOAT_ABI != 0 {
        return Err(ElfError::FloatAbi(e_flags));
    }
    // Table bounds, checked before goblin so that a short file says what is missing.
    let (phoff, phentsize, phnum) = (
        u64::from(word(28)),
        u64::from(half(42)),
        u64::from(half(44)),
    );
    if phoff + phentsize * phnum > bytes.len() as u64 {
        return Err(truncated(
            "the program header table",
            phoff,
            phoff + phentsize * phnum,
        ));
    }
    let (shoff, shentsize, shnum) = (
        u64::from(word(32)),
        u64::from(half(46)),
        u64::from(half(48)),
    );
    if shnum > 0 && shoff + shentsize * shnum > bytes.len() as u64 {
        return Err(truncated(
            "the section header table",
            shoff,
            shoff + shentsize * shnum,
        ));
    }
    let elf = Elf::parse(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;

    if elf
        .program_headers
        .iter()
        .any(|p| p.p_type == PT_INTERP || p.p_type == PT_DYNAMIC)
    {
        return Err(ElfError::Dynamic);
    }
    if let Some(sh) = elf
        .section_headers
        .iter()
        .find(|s| s.sh_type == SHT_REL || s.sh_type == SHT_RELA)
    {
        let name = elf
            .shdr_strtab
            .get_at(sh.sh_name)
            .unwrap_or("?")
            .to_string();
        return Err(ElfError::Relocations(name));
    }

    let mut segments = Vec::new();
    let mut ranges: Vec<(usize, u64, u64)> = Vec::new();
    let mut total = 0u64;
    for (index, ph) in elf.program_headers.iter().enumerate() {
        if ph.p_type != PT_LOAD || ph.p_memsz == 0 {
            continue;
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(ElfError::FileSizeExceedsMemSize {
                index,
                filesz: ph.p_filesz,
                memsz: ph.p_memsz,
            });
        }
        let file_end = ph.p_offset.saturating_add(ph.p_filesz);
        if file_end > bytes.len() as u64 {
            return Err(truncated(
                &format!("segment {index}"),
                ph.p_offset,
                file_end,
            ));
        }
        let (start, end) = (ph.p_vaddr, ph.p_vaddr.saturating_add(ph.p_memsz));
        let bad = |why| ElfError::BadAddress {
            index,
            start,
            end,
            why,
        };
        if end > 1 << 32 {
            return Err(bad("past the end of the 32-bit address space"));
        }
        if start < u64::from(GUARD_PAGE_END) {
            return Err(bad("in the guard page below 0x1000"));
        }
        if start < u64::from(STACK_TOP) && end > u64::from(STACK_REGION_START) {
            return Err(bad("in the stack region 0x7f000000..0x80000000"));
        }
        if let Some(&(first, s, e)) = ranges.iter().find(|&&(_, s, e)| start < e && s < end) {
            return Err(ElfError::Overlap {
                first,
                second: index,
                start: start.max(s),
                end: end.min(e),
            });
        }
        ranges.push((index, start, end));
        total += ph.p_memsz;
        if total > MAX_IMAGE_BYTES {
            return Err(ElfError::TooLarge(total));
        }
        segments.push(Segment {
            vaddr: start as u32,
            data: bytes[ph.p_offset as usize..file_end as usize].to_vec(),
            mem_size: ph.p_memsz as u32,
        });
    }
    if segments.is_empty() {
        return Err(ElfError::Empty);
    }
    if elf.entry % 4 != 0 {
        return Err(ElfError::BadEntry(elf.entry, "not 4-byte aligned"));
    }
    if elf.entry < u64::from(GUARD_PAGE_END) {
        return Err(ElfError::BadEntry(elf.entry, "in the guard page"));
    }
    Ok(ElfImage {
        entry: elf.entry as u32,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF32 writer for the tests: header, program headers, optional section headers.
    struct Builder {
        class: u8,
        data: u8,
        e_type: u16,
        machine: u16,
        flags: u32,
        entry: u32,
        /// (p_type, vaddr, file bytes, memsz)
        segments: Vec<(u32, u32, Vec<u8>, u32)>,
        /// (name, sh_type)
        sections: Vec<(&'static str, u32)>,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                class: ELFCLASS32,
                data: ELFDATA2LSB,
                e_type: ET_EXEC,
                machine: EM_RISCV,
                flags: 0,
                entry: 0x1_0000,
                segments: vec![(PT_LOAD, 0x1_0000, vec![0x13, 0, 0, 0, 0x73, 0, 0, 0], 8)],
                sections: vec![],
            }
        }

        fn build(&self) -> Vec<u8> {
            let phoff = 52u32;
            let mut data_off = phoff + 32 * self.segments.len() as u32;
            let mut out = vec![0u8; 52];
            out[..4].copy_from_slice(b"\x7fELF");
            out[4] = self.class;
            out[5] = self.data;
            out[6] = 1;
            out[16..18].copy_from_slice(&self.e_type.to_le_bytes());
            out[18..20].copy_from_slice(&self.machine.to_le_bytes());
            out[20..24].copy_from_slice(&1u32.to_le_bytes());
            out[24..28].copy_from_slice(&self.entry.to_le_bytes());
            out[28..32].copy_from_slice(&phoff.to_le_bytes());
            out[36..40].copy_from_slice(&self.flags.to_le_bytes());
            out[40..42].copy_from_slice(&52u16.to_le_bytes());
            out[42..44].copy_from_slice(&32u16.to_le_bytes());
            out[44..46].copy_from_slice(&(self.segments.len() as u16).to_le_bytes());
            out[46..48].copy_from_slice(&40u16.to_le_bytes());
            let mut payload = Vec::new();
            for (p_type, vaddr, bytes, memsz) in &self.segments {
                let mut ph = [0u8; 32];
                ph[0..4].copy_from_slice(&p_type.to_le_bytes());
                ph[4..8].copy_from_slice(&data_off.to_le_bytes());
                ph[8..12].copy_from_slice(&vaddr.to_le_bytes());
                ph[12..16].copy_from_slice(&vaddr.to_le_bytes());
                ph[16..20].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
                ph[20..24].copy_from_slice(&memsz.to_le_bytes());
                ph[24..28].copy_from_slice(&7u32.to_le_bytes());
                out.extend_from_slice(&ph);
                payload.extend_from_slice(bytes);
                data_off += bytes.len() as u32;
            }
            out.extend_from_slice(&payload);
            if !self.sections.is_empty() {
                // Section 0 is null; the last one is the name table.
                let mut names = vec![0u8];
                let mut offsets = Vec::new();
                for (name, _) in &self.sections {
                    offsets.push(names.len() as u32);
                    names.extend_from_slice(name.as_bytes());
                    names.push(0);
                }
                offsets.push(names.len() as u32);
                names.extend_from_slice(b".shstrtab\0");
                let names_off = out.len() as u32;
                out.extend_from_slice(&names);
                let shoff = out.len() as u32;
                let count = self.sections.len() + 2;
                out[32..36].copy_from_slice(&shoff.to_le_bytes());
                out[48..50].copy_from_slice(&(count as u16).to_le_bytes());
                out[50..52].copy_from_slice(&((count - 1) as u16).to_le_bytes());
                out.extend_from_slice(&[0u8; 40]);
                let mut types: Vec<u32> = self.sections.iter().map(|s| s.1).collect();
                types.push(3); // SHT_STRTAB
                for (k, sh_type) in types.into_iter().enumerate() {
                    let mut sh = [0u8; 40];
                    sh[0..4].copy_from_slice(&offsets[k].to_le_bytes());
                    sh[4..8].copy_from_slice(&sh_type.to_le_bytes());
                    if sh_type == 3 {
                        sh[16..20].copy_from_slice(&names_off.to_le_bytes());
                        sh[20..24].copy_from_slice(&(names.len() as u32).to_le_bytes());
                    }
                    out.extend_from_slice(&sh);
                }
            }
            out
        }
    }

    #[test]
    fn valid_image() {
        let mut b = Builder::new();
        b.segments.push((PT_LOAD, 0x2_0000, vec![1, 2, 3], 4096));
        b.segments.push((PT_LOAD, 0x3_0000, vec![], 0)); // empty: ignored
        b.segments.push((4, 0, vec![9; 4], 4)); // PT_NOTE: ignored
        let image = parse_elf(&b.build()).unwrap();
        assert_eq!(image.entry, 0x1_0000);
        assert_eq!(
            image.segments,
            vec![
                Segment {
                    vaddr: 0x1_0000,
                    data: vec![0x13, 0, 0, 0, 0x73, 0, 0, 0],
                    mem_size: 8
                },
                Segment {
                    vaddr: 0x2_0000,
                    data: vec![1, 2, 3],
                    mem_size: 4096
                },
            ]
        );
    }

    #[test]
    fn errors() {
        type Edit = fn(&mut Builder);
        let cases: &[(&str, Edit, fn(&ElfError) -> bool)] = &[
            (
                "elf64",
                |b| b.class = 2,
                |e| matches!(e, ElfError::WrongClass(2)),
            ),
            (
                "big endian",
                |b| b.data = 2,
                |e| matches!(e, ElfError::WrongEndianness(2)),
            ),
            (
                "x86",
                |b| b.machine = 62,
                |e| matches!(e, ElfError::WrongMachine(62)),
            ),
            (
                "object file",
                |b| b.e_type = ET_REL,
                |e| matches!(e, ElfError::NotExecutable(1)),
            ),
            (
                "pie",
                |b| b.e_type = ET_DYN,
                |e| matches!(e, ElfError::NotExecutable(3)),
            ),
            (
                "rvc",
                |b| b.flags = EF_RISCV_RVC,
                |e| matches!(e, ElfError::Compressed),
            ),
            (
                "float abi",
                |b| b.flags = 0x4,
                |e| matches!(e, ElfError::FloatAbi(4)),
            ),
            (
                "interp",
                |b| b.segments.push((PT_INTERP, 0, vec![0], 0)),
                |e| matches!(e, ElfError::Dynamic),
            ),
            (
                "dynamic",
                |b| b.segments.push((PT_DYNAMIC, 0, vec![], 0)),
                |e| matches!(e, ElfError::Dynamic),
            ),
            (
                "relocations",
                |b| b.sections.push((".rela.text", SHT_RELA)),
                |e| matches!(e, ElfError::Relocations(n) if n == ".rela.text"),
            ),
            (
                "filesz > memsz",
                |b| b.segments[0].3 = 4,
                |e| {
                    matches!(
                        e,
                        ElfError::FileSizeExceedsMemSize {
                            index: 0,
                            filesz: 8,
                            memsz: 4
                        }
                    )
                },
            ),
            (
                "guard page",
                |b| b.segments[0].1 = 0x800,
                |e| matches!(e, ElfError::BadAddress { why, .. } if why.contains("guard")),
            ),
            (
                "stack region",
                |b| b.segments.push((PT_LOAD, 0x7f80_0000, vec![], 16)),
                |e| matches!(e, ElfError::BadAddress { index: 1, why, .. } if why.contains("stack")),
            ),
            (
                "past 4 GiB",
                |b| b.segments.push((PT_LOAD, 0xffff_f000, vec![], 0x2000)),
                |e| matches!(e, ElfError::BadAddress { why, .. } if why.contains("32-bit")),
            ),
            (
                "overlap",
                |b| b.segments.push((PT_LOAD, 0x1_0004, vec![], 16)),
                |e| {
                    matches!(
                        e,
                        ElfError::Overlap {
                            first: 0,
                            second: 1,
                            start: 0x1_0004,
                            end: 0x1_0008
                        }
                    )
                },
            ),
            (
                "too large",
                |b| {
                    b.segments.push((PT_LOAD, 0x1000_0000, vec![], 0x3000_0000));
                    b.segments.push((PT_LOAD, 0x8000_0000, vec![], 0x2000_0000));
                },
                |e| matches!(e, ElfError::TooLarge(_)),
            ),
            (
                "misaligned entry",
                |b| b.entry = 0x1_0002,
                |e| matches!(e, ElfError::BadEntry(_, why) if why.contains("aligned")),
            ),
            (
                "entry in guard page",
                |b| b.entry = 0x100,
                |e| matches!(e, ElfError::BadEntry(_, why) if why.contains("guard")),
            ),
            (
                "no segments",
                |b| b.segments.clear(),
                |e| matches!(e, ElfError::Empty),
            ),
        ];
        for (name, edit, check) in cases {
            let mut b = Builder::new();
            edit(&mut b);
            let err = parse_elf(&b.build()).expect_err(name);
            assert!(check(&err), "{name}: got {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn truncated_and_garbage_files() {
        let good = Builder::new().build();
        assert_eq!(parse_elf(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(parse_elf(&[]), Err(ElfError::NotElf));
        for cut in [10, 51, 60, good.len() - 1] {
            let err = parse_elf(&good[..cut]).unwrap_err();
            assert!(
                matches!(err, ElfError::Truncated { .. }),
                "cut at {cut}: {err:?}"
            );
        }
    }

    /// A real program from Debian's cross compiler parses; a compressed build is refused.
    #[test]
    fn real_cross_compiled_programs() {
        let dir = std::env::temp_dir().join(format!("opml-elf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("tiny.c");
        std::fs::write(
            &src,
            "void _start(void){ for(;;) __asm__ volatile(\"ecall\"); }\n",
        )
        .unwrap();
        for (march, want_ok) in [("rv32im", true), ("rv32imc", false)] {
            let out = dir.join(format!("tiny-{march}.elf"));
            let status = std::process::Command::new("riscv64-unknown-elf-gcc")
                .args([
                    &format!("-march={march}"),
                    "-mabi=ilp32",
                    "-nostdlib",
                    "-ffreestanding",
                    "-static",
                    "-O2",
                ])
                .arg(&src)
                .arg("-o")
                .arg(&out)
                .status()
                .expect("riscv64-unknown-elf-gcc is missing: run scripts/setup.sh");
            assert!(status.success());
            let result = parse_elf(&std::fs::read(&out).unwrap());
            if want_ok {
                let image = result.unwrap();
                assert!(image
                    .segments
                    .iter()
                    .any(|s| (s.vaddr..s.vaddr + s.mem_size).contains(&image.entry)));
            } else {
                assert_eq!(result, Err(ElfError::Compressed));
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
