//! The committed VM state, its fixed byte encoding and its hash (`docs/protocol.md` section 2).

use crate::hash::{keccak256, Hash};
use serde::{Deserialize, Serialize};

/// Length of [`VmState::encode`]'s output.
pub const STATE_LEN: usize = 237;

/// Whether the machine runs, has exited, or has faulted (the state's `status` byte).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The next step executes an instruction.
    Running = 0,
    /// The program called `exit`; `exit_code` holds its code.
    Exited = 1,
    /// An instruction faulted; `exit_code` holds the [`Fault`] code.
    Faulted = 2,
}

/// Why a step faulted. The discriminant is the fault code stored in the state (`docs/protocol.md` 3.4).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Illegal encoding, compressed instruction, CSR or other SYSTEM instruction.
    #[error("illegal instruction")]
    IllegalInstruction = 1,
    /// `ebreak`.
    #[error("breakpoint (ebreak)")]
    Breakpoint = 2,
    /// `pc` not a multiple of 4.
    #[error("misaligned instruction fetch")]
    MisalignedFetch = 3,
    /// Load or store not aligned to its width, or a chunk buffer not aligned to 32 bytes.
    #[error("misaligned memory access")]
    MisalignedAccess = 4,
    /// Fetch, load, store or chunk buffer in the guard page `[0, 0x1000)`.
    #[error("access to the unmapped guard page")]
    UnmappedAccess = 5,
    /// `a7` names no known ecall.
    #[error("unknown ecall")]
    UnknownEcall = 6,
    /// `read_chunk` of a slot ≥ 16, an empty slot, or a chunk past the tensor's end.
    #[error("input chunk out of range")]
    InputOutOfRange = 7,
    /// `write_chunk` with the output accumulator full.
    #[error("output accumulator full")]
    OutputFull = 8,
}

impl Fault {
    /// The fault with code `code`, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        use Fault::*;
        [
            IllegalInstruction,
            Breakpoint,
            MisalignedFetch,
            MisalignedAccess,
            UnmappedAccess,
            UnknownEcall,
            InputOutOfRange,
            OutputFull,
        ]
        .into_iter()
        .find(|f| *f as u32 == code)
    }
}

/// Errors decoding a state encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The encoding is not [`STATE_LEN`] bytes.
    #[error("state encoding is {0} bytes, expected {STATE_LEN}")]
    Length(usize),
    /// The status byte is not 0, 1 or 2.
    #[error("invalid status byte {0} at offset 168")]
    Status(u8),
}

/// The whole committed state of the machine. Memory, inputs and output appear only as roots.
///
/// Encoding (big-endian integers), 237 bytes:
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 4 | `pc` |
/// | 4 | 124 | `x1 .. x31` |
/// | 128 | 32 | `mem_root` |
/// | 160 | 8 | `step` |
/// | 168 | 1 | `status` |
/// | 169 | 4 | `exit_code` |
/// | 173 | 32 | `input_root` |
/// | 205 | 32 | `output_acc` |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmState {
    /// Program counter.
    pub pc: u32,
    /// Registers x0..x31; x0 is always 0 and is not encoded.
    pub regs: [u32; 32],
    /// Root of the memory tree.
    #[serde(with = "hex_hash")]
    pub mem_root: Hash,
    /// Steps executed so far.
    pub step: u64,
    /// Running, exited or faulted.
    pub status: Status,
    /// Exit code or fault code; 0 while running.
    pub exit_code: u32,
    /// Root of the input slots' commitments.
    #[serde(with = "hex_hash")]
    pub input_root: Hash,
    /// Hash of the output accumulator.
    #[serde(with = "hex_hash")]
    pub output_acc: Hash,
}

impl VmState {
    /// The fixed 237-byte encoding.
    pub fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        out[0..4].copy_from_slice(&self.pc.to_be_bytes());
        for (i, reg) in self.regs[1..].iter().enumerate() {
            out[4 + 4 * i..8 + 4 * i].copy_from_slice(&reg.to_be_bytes());
        }
        out[128..160].copy_from_slice(&self.mem_root);
        out[160..168].copy_from_slice(&self.step.to_be_bytes());
        out[168] = self.status as u8;
        out[169..173].copy_from_slice(&self.exit_code.to_be_bytes());
        out[173..205].copy_from_slice(&self.input_root);
        out[205..237].copy_from_slice(&self.output_acc);
        out
    }

    /// Decodes [`Self::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.len() != STATE_LEN {
            return Err(StateError::Length(bytes.len()));
        }
        let u32_at = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let hash_at = |o: usize| -> Hash { bytes[o..o + 32].try_into().expect("32 bytes") };
        let mut regs = [0u32; 32];
        for (i, reg) in regs[1..].iter_mut().enumerate() {
            *reg = u32_at(4 + 4 * i);
        }
        let status = match bytes[168] {
            0 => Status::Running,
            1 => Status::Exited,
            2 => Status::Faulted,
            other => return Err(StateError::Status(other)),
        };
        Ok(Self {
            pc: u32_at(0),
            regs,
            mem_root: hash_at(128),
            step: u64::from_be_bytes(bytes[160..168].try_into().expect("8 bytes")),
            status,
            exit_code: u32_at(169),
            input_root: hash_at(173),
            output_acc: hash_at(205),
        })
    }

    /// keccak-256 of the encoding: the state commitment that bisection agrees on.
    pub fn hash(&self) -> Hash {
        keccak256(&self.encode())
    }
}

/// Serde of 32-byte hashes as `0x`-prefixed hex strings, so JSON files stay readable.
pub mod hex_hash {
    use crate::hash::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `0x…`.
    pub fn serialize<S: Serializer>(hash: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(hash)))
    }

    /// Reads `0x…` or bare hex of exactly 32 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = hex::decode(s.trim_start_matches("0x")).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|b: Vec<u8>| {
            serde::de::Error::custom(format!("expected 32 bytes, got {}", b.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> VmState {
        let mut regs = [0u32; 32];
        for (i, r) in regs.iter_mut().enumerate().skip(1) {
            *r = 0x0101_0101u32.wrapping_mul(i as u32);
        }
        VmState {
            pc: 0x1_0074,
            regs,
            mem_root: [7; 32],
            step: 0x0102_0304_0506_0708,
            status: Status::Running,
            exit_code: 0,
            input_root: [8; 32],
            output_acc: [9; 32],
        }
    }

    #[test]
    fn encode_decode_round_trip_and_layout() {
        let s = sample();
        let enc = s.encode();
        assert_eq!(VmState::decode(&enc).unwrap(), s);
        assert_eq!(&enc[0..4], &[0, 1, 0, 0x74]);
        assert_eq!(&enc[4..8], &0x0101_0101u32.to_be_bytes());
        assert_eq!(&enc[160..168], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn decode_rejects_bad_input() {
        let mut enc = sample().encode();
        assert_eq!(VmState::decode(&enc[..236]), Err(StateError::Length(236)));
        enc[168] = 3;
        assert_eq!(VmState::decode(&enc), Err(StateError::Status(3)));
    }

    /// Every single field, and every byte of the encoding, moves the hash.
    #[test]
    fn hash_changes_with_every_field() {
        let base = sample();
        let mutations: Vec<(&str, Box<dyn Fn(&mut VmState)>)> = vec![
            ("pc", Box::new(|s| s.pc ^= 4)),
            ("x1", Box::new(|s| s.regs[1] ^= 1)),
            ("x31", Box::new(|s| s.regs[31] ^= 1 << 31)),
            ("mem_root", Box::new(|s| s.mem_root[31] ^= 1)),
            ("step", Box::new(|s| s.step += 1)),
            ("status", Box::new(|s| s.status = Status::Exited)),
            ("exit_code", Box::new(|s| s.exit_code = 1)),
            ("input_root", Box::new(|s| s.input_root[0] ^= 0x80)),
            ("output_acc", Box::new(|s| s.output_acc[15] ^= 2)),
        ];
        for (name, mutate) in mutations {
            let mut s = base.clone();
            mutate(&mut s);
            assert_ne!(s.hash(), base.hash(), "{name}");
        }
        let enc = base.encode();
        for byte in 0..STATE_LEN {
            let mut e = enc;
            e[byte] ^= 1;
            assert_ne!(keccak256(&e), base.hash(), "byte {byte}");
        }
    }

    #[test]
    fn json_round_trip() {
        let s = sample();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"mem_root\":\"0x0707"));
        assert_eq!(serde_json::from_str::<VmState>(&json).unwrap(), s);
    }
}
