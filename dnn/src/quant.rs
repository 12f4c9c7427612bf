//! Requantization: an int32 accumulator scaled by `multiplier · 2^-shift` to int8.
//!
//! The one rounding rule (protocol section 8): `y = clamp((acc · m + 2^(s−1)) >> s, −128, 127)`,
//! computed exactly in 64 bits with an arithmetic shift, so halves round towards +∞. `m` is any
//! int32 and `s` is in 1..=62. The VM kernels compute the same 64-bit value from `mul`/`mulh`.

use crate::asm::{reg::*, Assembler, Reg};

/// A fixed-point scale `multiplier · 2^-shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Requant {
    /// Signed fixed-point multiplier.
    pub multiplier: i32,
    /// Right shift, 1..=62.
    pub shift: u32,
}

/// Why a scale cannot be represented.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// The scale is not finite and positive, or too small or large for the representation.
    #[error("scale {0} cannot be represented as multiplier · 2^-shift with shift in 1..=62")]
    Scale(f64),
    /// The shift is outside 1..=62.
    #[error("shift {0} is outside 1..=62")]
    Shift(u32),
    /// The shift is too small for operands narrowed by up to `narrowed` bits.
    #[error("shift {shift} must exceed {narrowed}, the most bits its operands may be narrowed by")]
    Narrowed {
        /// The shift.
        shift: u32,
        /// Bits the operands may be narrowed by.
        narrowed: u32,
    },
}

impl Requant {
    /// The closest representation of `scale` with a 31-bit multiplier in [2^30, 2^31).
    pub fn from_scale(scale: f64) -> Result<Self, QuantError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(QuantError::Scale(scale));
        }
        let mut shift = 30i32 - scale.log2().floor() as i32;
        let mut multiplier = (scale * 2f64.powi(shift)).round() as i64;
        if multiplier >= 1 << 31 {
            multiplier /= 2;
            shift -= 1;
        }
        if !(1..=62).contains(&shift) {
            return Err(QuantError::Scale(scale));
        }
        Ok(Self {
            multiplier: multiplier as i32,
            shift: shift as u32,
        })
    }

    /// Checks that the shift is in range (for params read from files).
    pub fn validate(self) -> Result<Self, QuantError> {
        if (1..=62).contains(&self.shift) {
            Ok(self)
        } else {
            Err(QuantError::Shift(self.shift))
        }
    }

    /// The scale this represents.
    pub fn scale(self) -> f64 {
        f64::from(self.multiplier) * 2f64.powi(-(self.shift as i32))
    }

    /// Applies the rule to `acc`.
    pub fn apply(self, acc: i32) -> i8 {
        round_shift(acc, self.multiplier, self.shift).clamp(-128, 127) as i8
    }

    /// Applies the rule to `acc` into int16, for an accumulator whose operands were narrowed by
    /// `narrowed` bits (it stands for `acc · 2^narrowed`, so the shift is that much smaller). The
    /// caller has checked that `shift > narrowed` ([`Requant::validate_narrowed`]).
    pub fn apply_i16(self, acc: i32, narrowed: u32) -> i16 {
        round_shift(acc, self.multiplier, self.shift - narrowed).clamp(-32768, 32767) as i16
    }

    /// Checks that the shift leaves at least 1 after `narrowed` bits (for params read from files).
    pub fn validate_narrowed(self, narrowed: u32) -> Result<Self, QuantError> {
        let s = self.validate()?;
        if s.shift > narrowed {
            Ok(s)
        } else {
            Err(QuantError::Narrowed {
                shift: s.shift,
                narrowed,
            })
        }
    }
}

/// `(acc · m + 2^(s−1)) >> s`, exact in 64 bits, arithmetic shift.
fn round_shift(acc: i32, m: i32, s: u32) -> i64 {
    (i64::from(acc) * i64::from(m) + (1i64 << (s - 1))) >> s
}

/// Emits the rule in RV32IM: `acc` (register) times the multiplier in `m`, shifted by the amount in
/// `s`; the int8 result (sign-extended) lands in `out`. Clobbers t3..t6, a3..a6.
pub fn emit_requant(a: &mut Assembler, acc: Reg, m: Reg, s: Reg, out: Reg) {
    emit_requant_clamped(a, acc, m, s, out, (-128, 127));
}

/// [`emit_requant`] saturating to `(min, max)` instead of int8's range (int16: `(-32768, 32767)`).
pub fn emit_requant_clamped(
    a: &mut Assembler,
    acc: Reg,
    m: Reg,
    s: Reg,
    out: Reg,
    (min, max): (i32, i32),
) {
    let (lo, hi, r, t) = (T3, T4, T5, T6);
    let (high_round, rounded, high_shift, shifted, fits, done) = (
        a.fresh_label("rq_high_round"),
        a.fresh_label("rq_rounded"),
        a.fresh_label("rq_high_shift"),
        a.fresh_label("rq_shifted"),
        a.fresh_label("rq_fits"),
        a.fresh_label("rq_done"),
    );
    a.mul(lo, acc, m).mulh(hi, acc, m);
    // Add 2^(s-1) to hi:lo.
    a.addi(A3, s, -1).li(A4, 32).bgeu(A3, A4, &high_round);
    a.li(r, 1)
        .sll(r, r, A3)
        .add(lo, lo, r)
        .sltu(t, lo, r)
        .add(hi, hi, t)
        .j(&rounded);
    a.label(&high_round)
        .addi(A3, A3, -32)
        .li(r, 1)
        .sll(r, r, A3)
        .add(hi, hi, r);
    a.label(&rounded);
    // Arithmetic shift of hi:lo by s into A5 (low word) and A6 (high word).
    a.bgeu(s, A4, &high_shift);
    a.srl(A5, lo, s)
        .sub(t, A4, s)
        .sll(t, hi, t)
        .or(A5, A5, t)
        .sra(A6, hi, s)
        .j(&shifted);
    a.label(&high_shift)
        .addi(t, s, -32)
        .sra(A5, hi, t)
        .srai(A6, hi, 31);
    a.label(&shifted);
    // Saturate: when the high word is not the low word's sign, the value is out of int32 range.
    a.srai(t, A5, 31).beq(t, A6, &fits);
    a.li(out, max).bge(A6, ZERO, &done).li(out, min).j(&done);
    a.label(&fits).mv(out, A5);
    let (not_high, not_low) = (a.fresh_label("rq_not_high"), a.fresh_label("rq_not_low"));
    a.li(t, max)
        .bge(t, out, &not_high)
        .mv(out, t)
        .label(&not_high);
    a.li(t, min)
        .bge(out, t, &not_low)
        .mv(out, t)
        .label(&not_low);
    a.label(&done);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_rule_table() {
        let cases = [
            // (acc, multiplier, shift, expected)
            (3, 1, 1, 2),   // 1.5 rounds up
            (-3, 1, 1, -1), // -1.5 rounds up to -1
            (5, 1, 2, 1),   // 1.25
            (6, 1, 2, 2),   // 1.5
            (1000, 1 << 30, 31, 127),
            (-1000, 1 << 30, 31, -128),
            (i32::MAX, i32::MAX, 62, 1), // 0.99… rounds to 1
            (i32::MIN, i32::MAX, 62, -1),
            (i32::MIN, i32::MIN, 62, 1), // 1.0 + 0.5 → 1
            (i32::MAX, 1 << 30, 1, 127),
            (100, -(1 << 30), 32, -25),
        ];
        for (acc, multiplier, shift, want) in cases {
            assert_eq!(
                Requant { multiplier, shift }.apply(acc),
                want,
                "{acc} * {multiplier} >> {shift}"
            );
        }
    }

    #[test]
    fn scales_round_trip() {
        for scale in [1e-9, 0.00123, 0.5, 0.75, 1.0, 3.9, 1000.0] {
            let q = Requant::from_scale(scale).unwrap();
            assert!(((q.scale() - scale) / scale).abs() < 1e-9, "{scale}: {q:?}");
            assert!(q.multiplier >= 1 << 30);
        }
        assert!(Requant::from_scale(0.0).is_err());
        assert!(Requant::from_scale(f64::NAN).is_err());
        assert!(Requant::from_scale(1e30).is_err());
    }
}
