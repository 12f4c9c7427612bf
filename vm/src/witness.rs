//! The one-step witness: everything a verifier that knows only the pre-state hash needs to compute
//! the post-state hash (`docs/protocol.md` section 4), and its byte encoding.

use crate::hash::{zero_hash, Hash, MEMORY_DEPTH};
use crate::state::{hex_hash, VmState};
use serde::{Deserialize, Serialize};

/// A memory leaf and its path to the memory root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryProof {
    /// The 32 bytes of the leaf.
    pub leaf: [u8; 32],
    /// Siblings from the bottom of the tree to the top.
    pub path: [Hash; MEMORY_DEPTH],
}

/// A chunk of an input tensor and its path to the tensor's data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkProof {
    /// The chunk, zero-padded past the tensor's end.
    pub chunk: [u8; 32],
    /// Siblings from the bottom up; as many as the tensor's chunk tree is deep.
    pub path: Vec<Hash>,
}

/// Proof of what `read_chunk` reads: the slot's commitment against the input root, and the chunk
/// against the commitment's data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProof {
    /// The tensor header; empty when the slot is empty.
    pub header: Vec<u8>,
    /// The tensor's data root (unused when the slot is empty).
    pub data_root: Hash,
    /// Path of the slot's leaf in the input tree.
    pub slot_path: [Hash; crate::commitment::INPUT_DEPTH],
    /// The chunk, when it is in range.
    pub chunk: Option<ChunkProof>,
}

/// The output accumulator's preimage: `count ‖ frontier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccumulatorSnapshot {
    /// Chunks appended.
    pub count: u32,
    /// The incremental tree's frontier.
    pub frontier: [Hash; MEMORY_DEPTH],
}

impl AccumulatorSnapshot {
    /// `count (u32 BE) ‖ frontier`: 868 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 32 * MEMORY_DEPTH);
        out.extend_from_slice(&self.count.to_be_bytes());
        for h in &self.frontier {
            out.extend_from_slice(h);
        }
        out
    }
}

/// The ecall-specific part of a witness.
#[derive(Debug, Clone, PartialEq, Eq)]
// One per proven step, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum EcallExtra {
    /// For `read_chunk`.
    Input(InputProof),
    /// For `write_chunk`.
    Accumulator(AccumulatorSnapshot),
}

/// The witness of one step, in structured form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepWitness {
    /// The state before the step.
    pub pre_state: VmState,
    /// Proof of the leaf holding the instruction, when the step fetches one.
    pub instruction: Option<MemoryProof>,
    /// Input proof or accumulator, for the chunk ecalls.
    pub extra: Option<EcallExtra>,
    /// Proof of the data leaf a load, store or chunk ecall touches.
    pub memory: Option<MemoryProof>,
}

impl StepWitness {
    /// The byte encoding that `verify_step` and the Solidity step contract take.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.pre_state.encode().to_vec();
        if let Some(p) = &self.instruction {
            encode_memory_proof(&mut out, p);
        }
        match &self.extra {
            None => {}
            Some(EcallExtra::Accumulator(acc)) => out.extend_from_slice(&acc.encode()),
            Some(EcallExtra::Input(p)) => {
                out.extend_from_slice(&(p.header.len() as u16).to_be_bytes());
                if !p.header.is_empty() {
                    out.extend_from_slice(&p.header);
                    out.extend_from_slice(&p.data_root);
                }
                p.slot_path.iter().for_each(|h| out.extend_from_slice(h));
                if let Some(c) = &p.chunk {
                    out.extend_from_slice(&c.chunk);
                    c.path.iter().for_each(|h| out.extend_from_slice(h));
                }
            }
        }
        if let Some(p) = &self.memory {
            encode_memory_proof(&mut out, p);
        }
        out
    }
}

/// `leaf ‖ mask ‖ the siblings the mask keeps` (`docs/protocol.md` section 4): bit `k` of the
/// big-endian `u32` mask is set when sibling `k` is the zero-subtree hash `Z[k]`, which is then
/// left out (the verifier puts it back). Untouched memory makes most siblings zero, and calldata
/// is most of what a step costs on chain.
fn encode_memory_proof(out: &mut Vec<u8>, proof: &MemoryProof) {
    out.extend_from_slice(&proof.leaf);
    out.extend_from_slice(&zero_sibling_mask(&proof.path).to_be_bytes());
    for (k, sibling) in proof.path.iter().enumerate() {
        if *sibling != zero_hash(k) {
            out.extend_from_slice(sibling);
        }
    }
}

/// The mask of a path's siblings that are zero-subtree hashes: bit `k` set when `path[k] = Z[k]`.
fn zero_sibling_mask(path: &[Hash]) -> u32 {
    path.iter()
        .enumerate()
        .filter(|(k, sibling)| **sibling == zero_hash(*k))
        .fold(0, |mask, (k, _)| mask | 1 << k)
}

/// A proven step: the witness with the hashes on both sides. This is what `opml vm witness` writes
/// and `opml vm verify-witness` reads (as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepProof {
    /// Index of the step (the pre-state's step counter).
    pub step: u64,
    /// Hash of the state before the step.
    #[serde(with = "hex_hash")]
    pub pre_state_hash: Hash,
    /// Hash of the state after the step.
    #[serde(with = "hex_hash")]
    pub post_state_hash: Hash,
    /// The state before the step, decoded for people.
    pub pre_state: VmState,
    /// The instruction word executed, if the step fetched one.
    pub instruction_word: Option<u32>,
    /// The encoded witness, `0x`-hex.
    #[serde(with = "hex_bytes")]
    pub witness: Vec<u8>,
}

/// What kind of step a witness proves, for reports of what steps cost (gas by class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepClass {
    /// Integer register and immediate arithmetic, `lui`, `auipc`, `fence`.
    Alu,
    /// The M extension: multiply, divide, remainder.
    MExtension,
    /// Loads.
    Load,
    /// Stores.
    Store,
    /// Conditional branches.
    Branch,
    /// `jal` and `jalr`.
    Jump,
    /// The console `write` ecall.
    Write,
    /// The `exit` and `exit_group` ecalls.
    Exit,
    /// The `read_chunk` ecall.
    ReadChunk,
    /// The `write_chunk` ecall.
    WriteChunk,
    /// A step that can only fault: an illegal word, `ebreak`, an unknown ecall, or a fetch that
    /// faults before a word is read.
    Fault,
    /// A step of a machine that has already exited or faulted (it changes nothing).
    Halted,
}

impl StepClass {
    /// Every class, in report order.
    pub const ALL: [StepClass; 12] = [
        Self::Alu,
        Self::MExtension,
        Self::Load,
        Self::Store,
        Self::Branch,
        Self::Jump,
        Self::Write,
        Self::Exit,
        Self::ReadChunk,
        Self::WriteChunk,
        Self::Fault,
        Self::Halted,
    ];

    /// The class's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Alu => "alu",
            Self::MExtension => "m_extension",
            Self::Load => "load",
            Self::Store => "store",
            Self::Branch => "branch",
            Self::Jump => "jump",
            Self::Write => "write",
            Self::Exit => "exit",
            Self::ReadChunk => "read_chunk",
            Self::WriteChunk => "write_chunk",
            Self::Fault => "fault",
            Self::Halted => "halted",
        }
    }
}

impl StepProof {
    /// Checks that the fields a person reads (`step`, `pre_state`, `pre_state_hash`,
    /// `instruction_word`) say what the witness bytes say, so that a file edited apart from its
    /// bytes is rejected instead of shown as what it is not. Says which field disagrees.
    pub fn check_readable_fields(&self) -> Result<(), String> {
        let Some(bytes) = self.witness.get(..crate::state::STATE_LEN) else {
            return Err(format!(
                "the witness is {} bytes, shorter than a state ({} bytes)",
                self.witness.len(),
                crate::state::STATE_LEN
            ));
        };
        let state = VmState::decode(bytes).map_err(|e| format!("the witness's state: {e}"))?;
        if crate::hash::keccak256(bytes) != self.pre_state_hash {
            return Err("`pre_state_hash` is not the hash of the witness's state".into());
        }
        if state != self.pre_state {
            return Err("`pre_state` is not the state the witness starts from".into());
        }
        if self.step != state.step {
            return Err(format!(
                "`step` is {}, the witness's state is at step {}",
                self.step, state.step
            ));
        }
        // A running machine at an aligned pc outside the guard page fetches: the witness then
        // goes on with the instruction's leaf, whose word at `pc mod 32` was executed.
        let fetches = state.status == crate::Status::Running
            && state.pc.is_multiple_of(4)
            && state.pc >= crate::elf::GUARD_PAGE_END;
        let fetched = match self
            .witness
            .get(crate::state::STATE_LEN..crate::state::STATE_LEN + 32)
        {
            Some(leaf) if fetches => {
                let o = (state.pc % 32) as usize;
                Some(u32::from_le_bytes(
                    leaf[o..o + 4].try_into().expect("4 bytes"),
                ))
            }
            _ => None,
        };
        if fetched != self.instruction_word {
            return Err(format!(
                "`instruction_word` is {}, the witness's instruction leaf holds {}",
                self.instruction_word
                    .map_or("none".into(), |w| format!("{w:#010x}")),
                fetched.map_or("none".into(), |w| format!("{w:#010x}"))
            ));
        }
        Ok(())
    }

    /// The class of this step, from its pre-state and instruction word.
    pub fn class(&self) -> StepClass {
        use crate::instruction::{Instruction, Opcode::*};
        if self.pre_state.status != crate::Status::Running {
            return StepClass::Halted;
        }
        let Some(word) = self.instruction_word else {
            return StepClass::Fault;
        };
        match Instruction::decode(word).opcode {
            Lui | Auipc | Addi | Slti | Sltiu | Xori | Ori | Andi | Slli | Srli | Srai | Add
            | Sub | Sll | Slt | Sltu | Xor | Srl | Sra | Or | And | Fence => StepClass::Alu,
            Mul | Mulh | Mulhsu | Mulhu | Div | Divu | Rem | Remu => StepClass::MExtension,
            Lb | Lh | Lw | Lbu | Lhu => StepClass::Load,
            Sb | Sh | Sw => StepClass::Store,
            Beq | Bne | Blt | Bge | Bltu | Bgeu => StepClass::Branch,
            Jal | Jalr => StepClass::Jump,
            Ecall => match self.pre_state.regs[17] {
                crate::ecall::WRITE => StepClass::Write,
                crate::ecall::EXIT | crate::ecall::EXIT_GROUP => StepClass::Exit,
                crate::ecall::READ_CHUNK => StepClass::ReadChunk,
                crate::ecall::WRITE_CHUNK => StepClass::WriteChunk,
                _ => StepClass::Fault,
            },
            Ebreak | Illegal => StepClass::Fault,
        }
    }
}

/// Serde of byte strings as `0x`-prefixed hex.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `0x…`.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(bytes)))
    }

    /// Reads `0x…` or bare hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.trim_start_matches("0x")).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::StepClass;
    use crate::encode::{b, i, j, r, s, u, EBREAK, ECALL, LOAD, LUI, OP, OP_IMM};
    use crate::{ecall, ElfImage, InputSlots, Machine};

    fn class_of(word: u32, a7: u32) -> StepClass {
        let image = ElfImage::from_words(0x1_0000, &[word], 0, &[]);
        let mut m = Machine::new(&image, InputSlots::default());
        m.set_register(17, a7);
        m.prove_step().class()
    }

    /// A class has one name: the one reports print is the one its JSON writes (snake_case).
    #[test]
    fn a_class_is_named_as_its_json_names_it() {
        for class in StepClass::ALL {
            assert_eq!(serde_json::to_value(class).unwrap(), class.name());
            assert!(
                class
                    .name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                class.name()
            );
        }
    }

    /// Bit `k` of the mask is set exactly when sibling `k` is `Z[k]`; a zero that is not the
    /// zero hash of its own level stays in.
    #[test]
    fn the_mask_names_the_zero_siblings() {
        use crate::hash::{zero_hash, MEMORY_DEPTH};
        let zeros: Vec<_> = (0..MEMORY_DEPTH).map(zero_hash).collect();
        let with = |k: usize, h: [u8; 32]| {
            let mut p = zeros.clone();
            p[k] = h;
            p
        };
        let all = (1u32 << MEMORY_DEPTH) - 1;
        let cases = [
            (zeros.clone(), all),
            (with(0, [1; 32]), all & !1),
            (with(26, [7; 32]), all & !(1 << 26)),
            (with(5, zero_hash(4)), all & !(1 << 5)),
            (with(3, [0; 32]), all & !(1 << 3)),
            (vec![[9; 32]; MEMORY_DEPTH], 0),
        ];
        for (path, want) in cases {
            assert_eq!(super::zero_sibling_mask(&path), want, "{want:#x}");
        }
    }

    #[test]
    fn readable_fields_that_disagree_with_the_bytes_are_named() {
        let word = i(5, 1, 0, 3, OP_IMM);
        let image = ElfImage::from_words(0x1_0000, &[word, word], 0, &[]);
        let mut m = Machine::new(&image, InputSlots::default());
        m.run(1);
        let proof = m.prove_step();
        assert_eq!(proof.check_readable_fields(), Ok(()));
        type Edit = fn(&mut super::StepProof);
        let cases: [(Edit, &str); 6] = [
            (|p| p.step += 1, "`step`"),
            (|p| p.pre_state.pc += 4, "`pre_state`"),
            (|p| p.pre_state.regs[3] = 7, "`pre_state`"),
            (|p| p.pre_state_hash[0] ^= 1, "`pre_state_hash`"),
            (|p| p.instruction_word = Some(0x13), "`instruction_word`"),
            (|p| p.witness.truncate(100), "shorter than a state"),
        ];
        for (edit, field) in cases {
            let mut bad = proof.clone();
            edit(&mut bad);
            let err = bad.check_readable_fields().unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn steps_are_classed_by_instruction_and_ecall() {
        let cases = [
            (r(0, 2, 1, 0, 3, OP), 0, StepClass::Alu),
            (i(5, 1, 0, 3, OP_IMM), 0, StepClass::Alu),
            (u(0x1000, 3, LUI), 0, StepClass::Alu),
            (0x0ff0_000f, 0, StepClass::Alu),
            (r(1, 2, 1, 4, 3, OP), 0, StepClass::MExtension),
            (i(0, 1, 2, 3, LOAD), 0, StepClass::Load),
            (s(0, 2, 1, 0), 0, StepClass::Store),
            (b(8, 2, 1, 0), 0, StepClass::Branch),
            (j(8, 1), 0, StepClass::Jump),
            (ECALL, ecall::WRITE, StepClass::Write),
            (ECALL, ecall::EXIT, StepClass::Exit),
            (ECALL, ecall::EXIT_GROUP, StepClass::Exit),
            (ECALL, ecall::READ_CHUNK, StepClass::ReadChunk),
            (ECALL, ecall::WRITE_CHUNK, StepClass::WriteChunk),
            (ECALL, 12345, StepClass::Fault),
            (EBREAK, 0, StepClass::Fault),
            (0, 0, StepClass::Fault),
        ];
        for (word, a7, want) in cases {
            assert_eq!(class_of(word, a7), want, "word {word:#010x}, a7 {a7}");
        }
    }

    #[test]
    fn a_stopped_machine_steps_as_halted() {
        let image = ElfImage::from_words(0x1_0000, &[ECALL], 0, &[]);
        let mut m = Machine::new(&image, InputSlots::default());
        m.set_register(17, ecall::EXIT);
        m.run(1);
        assert_eq!(m.prove_step().class(), StepClass::Halted);
    }
}
