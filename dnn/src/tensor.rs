//! Integer tensors on `ndarray`, their byte encoding and their commitment (DESIGN decision 6).
//!
//! Elements are stored row-major, little-endian. The commitment is `keccak(header ‖ dataRoot)` with
//! the data root of `opml_vm::data_root` (32-byte chunks, the last zero-padded, padded with zero
//! leaves to a power of two) and the header of `docs/protocol.md` section 8. `rs_merkle` does not
//! fit that padding rule (it promotes an odd node instead of pairing it with a zero leaf), so the
//! VM's own tree is used: the same code that the output accumulator is checked against.

use ndarray::{ArrayD, IxDyn};
use opml_vm::{data_root, tensor_commitment, Hash};
use std::borrow::Cow;

/// Element type of a tensor. The discriminant is its code in the tensor header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// Signed 8-bit.
    I8 = 1,
    /// Signed 16-bit.
    I16 = 2,
    /// Signed 32-bit.
    I32 = 3,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 => 4,
        }
    }

    /// The type of header code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::I8),
            2 => Some(Self::I16),
            3 => Some(Self::I32),
            _ => None,
        }
    }
}

/// Most bytes one tensor may take: a node's output and inputs live in the VM's 4 GiB address
/// space, and a shape from a hostile model file must not make the tool allocate without bound.
pub const MAX_TENSOR_BYTES: usize = 1 << 30;

/// Bytes of a `dtype` tensor of `shape`, or [`TensorError::TooLarge`] when the size overflows or
/// exceeds [`MAX_TENSOR_BYTES`].
pub fn byte_len(dtype: DType, shape: &[usize]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_BYTES)
        .ok_or_else(|| TensorError::TooLarge(shape.to_vec()))
}

/// What is wrong with tensor data or its shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// The bytes are not a whole number of `shape`'s elements.
    #[error("{got} bytes do not hold a {dtype:?} tensor of shape {shape:?} ({want} bytes)")]
    ByteLength {
        /// Element type.
        dtype: DType,
        /// Expected shape.
        shape: Vec<usize>,
        /// Bytes the shape needs.
        want: usize,
        /// Bytes given.
        got: usize,
    },
    /// A tensor has a shape other than the one required.
    #[error("expected shape {want:?}, got {got:?}")]
    Shape {
        /// Required shape.
        want: Vec<usize>,
        /// Actual shape.
        got: Vec<usize>,
    },
    /// A tensor has an element type other than the one required.
    #[error("expected {want:?} elements, got {got:?}")]
    DType {
        /// Required type.
        want: DType,
        /// Actual type.
        got: DType,
    },
    /// The shape is too large: its byte length overflows, exceeds [`MAX_TENSOR_BYTES`] or a
    /// header's `u32`, or its rank is over 254.
    #[error(
        "shape {0:?} is too large (a tensor holds at most {MAX_TENSOR_BYTES} bytes, rank 254)"
    )]
    TooLarge(Vec<usize>),
    /// Encoded bytes (header ‖ data) that do not hold a tensor.
    #[error("malformed tensor encoding at byte {at}: {reason}")]
    Encoding {
        /// Offset of the bad part.
        at: usize,
        /// What is wrong there.
        reason: &'static str,
    },
}

/// An integer tensor of any rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tensor {
    /// int8 elements.
    I8(ArrayD<i8>),
    /// int16 elements.
    I16(ArrayD<i16>),
    /// int32 elements.
    I32(ArrayD<i32>),
}

impl Tensor {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            Self::I8(_) => DType::I8,
            Self::I16(_) => DType::I16,
            Self::I32(_) => DType::I32,
        }
    }

    /// Shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::I8(a) => a.shape(),
            Self::I16(a) => a.shape(),
            Self::I32(a) => a.shape(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encoded size in bytes.
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// The elements, row-major, little-endian.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.le_bytes().into_owned()
    }

    /// [`Tensor::to_le_bytes`] without a copy where the memory already holds exactly those bytes
    /// (a row-major array on a little-endian host, every tensor the executor makes): a commitment
    /// hashes the tensor in place instead of serialising it first.
    pub fn le_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Self::I8(a) => le_bytes(a, |x| [x as u8]),
            Self::I16(a) => le_bytes(a, i16::to_le_bytes),
            Self::I32(a) => le_bytes(a, i32::to_le_bytes),
        }
    }

    /// Decodes row-major little-endian elements of `dtype` into a tensor of `shape`.
    pub fn from_le_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Self, TensorError> {
        let want = byte_len(dtype, shape)?;
        if bytes.len() != want {
            return Err(TensorError::ByteLength {
                dtype,
                shape: shape.to_vec(),
                want,
                got: bytes.len(),
            });
        }
        let dim = IxDyn(shape);
        let shaped = |v| ArrayD::from_shape_vec(dim.clone(), v).expect("length checked above");
        Ok(match dtype {
            DType::I8 => Self::I8(shaped(bytes.iter().map(|&b| b as i8).collect())),
            DType::I16 => Self::I16(
                ArrayD::from_shape_vec(
                    dim.clone(),
                    bytes
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                )
                .expect("length checked above"),
            ),
            DType::I32 => Self::I32(
                ArrayD::from_shape_vec(
                    dim,
                    bytes
                        .chunks_exact(4)
                        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
                .expect("length checked above"),
            ),
        })
    }

    /// The tensor header (protocol section 8): byte length (u32 BE), dtype code, rank, and each
    /// dimension (u32 BE).
    pub fn header(&self) -> Result<Vec<u8>, TensorError> {
        header(self.dtype(), self.shape())
    }

    /// The self-delimiting encoding `header ‖ data` (protocol section 8 header, then the elements):
    /// how caches store tensors.
    pub fn encode(&self) -> Result<Vec<u8>, TensorError> {
        let mut out = self.header()?;
        out.extend_from_slice(&self.to_le_bytes());
        Ok(out)
    }

    /// Decodes one [`encode`](Self::encode)d tensor at the start of `bytes`; returns it and the
    /// bytes it took.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize), TensorError> {
        let bad = |at, reason| TensorError::Encoding { at, reason };
        let fixed = bytes.get(..6).ok_or(bad(0, "shorter than a header"))?;
        let len = u32::from_be_bytes(fixed[..4].try_into().expect("4 bytes")) as usize;
        let dtype = DType::from_code(fixed[4]).ok_or(bad(4, "unknown dtype code"))?;
        let rank = fixed[5] as usize;
        let dims = bytes
            .get(6..6 + 4 * rank)
            .ok_or(bad(6, "header shorter than its rank"))?;
        let shape: Vec<usize> = dims
            .chunks_exact(4)
            .map(|d| u32::from_be_bytes(d.try_into().expect("4 bytes")) as usize)
            .collect();
        let start = 6 + 4 * rank;
        let data = bytes
            .get(start..start + len)
            .ok_or(bad(start, "data shorter than the header says"))?;
        Ok((Self::from_le_bytes(dtype, &shape, data)?, start + len))
    }

    /// `keccak(header ‖ dataRoot)`.
    pub fn commitment(&self) -> Result<Hash, TensorError> {
        Ok(tensor_commitment(
            &self.header()?,
            &data_root(&self.le_bytes()),
        ))
    }

    /// The int8 array, or an error naming the type it has.
    pub fn as_i8(&self) -> Result<&ArrayD<i8>, TensorError> {
        match self {
            Self::I8(a) => Ok(a),
            other => Err(TensorError::DType {
                want: DType::I8,
                got: other.dtype(),
            }),
        }
    }

    /// The int16 array, or an error naming the type it has.
    pub fn as_i16(&self) -> Result<&ArrayD<i16>, TensorError> {
        match self {
            Self::I16(a) => Ok(a),
            other => Err(TensorError::DType {
                want: DType::I16,
                got: other.dtype(),
            }),
        }
    }

    /// The int32 array, or an error naming the type it has.
    pub fn as_i32(&self) -> Result<&ArrayD<i32>, TensorError> {
        match self {
            Self::I32(a) => Ok(a),
            other => Err(TensorError::DType {
                want: DType::I32,
                got: other.dtype(),
            }),
        }
    }
}

/// An integer element whose in-memory bytes on a little-endian host are its little-endian bytes.
trait LeElement: Copy {}
impl LeElement for i8 {}
impl LeElement for i16 {}
impl LeElement for i32 {}

/// The row-major little-endian bytes of `a`: borrowed from its memory when it is in standard
/// layout on a little-endian host, else encoded element by element with `encode`.
fn le_bytes<T: LeElement, const N: usize>(
    a: &ArrayD<T>,
    encode: impl Fn(T) -> [u8; N],
) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    if let Some(elements) = a.as_slice() {
        // SAFETY: `T` is i8, i16 or i32 (`LeElement` is private): plain integers without padding,
        // every byte initialised, and `u8` has alignment 1; the borrow keeps `a` alive and unchanged.
        return Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(
                elements.as_ptr().cast::<u8>(),
                std::mem::size_of_val(elements),
            )
        });
    }
    let mut out = Vec::with_capacity(a.len() * N);
    for &x in a.iter() {
        out.extend_from_slice(&encode(x));
    }
    Cow::Owned(out)
}

/// The header of a `dtype` tensor of `shape` (protocol section 8).
pub fn header(dtype: DType, shape: &[usize]) -> Result<Vec<u8>, TensorError> {
    let too_large = || TensorError::TooLarge(shape.to_vec());
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(too_large)?;
    if shape.len() > 254 {
        return Err(too_large());
    }
    let mut h = Vec::with_capacity(6 + 4 * shape.len());
    h.extend_from_slice(&bytes.to_be_bytes());
    h.push(dtype as u8);
    h.push(shape.len() as u8);
    for &d in shape {
        h.extend_from_slice(&u32::try_from(d).map_err(|_| too_large())?.to_be_bytes());
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_lengths_are_checked_and_capped() {
        let cases: [(DType, &[usize], Option<usize>); 6] = [
            (DType::I8, &[], Some(1)),
            (DType::I32, &[3, 5], Some(60)),
            (DType::I8, &[0, 7], Some(0)),
            (DType::I8, &[1 << 30], Some(MAX_TENSOR_BYTES)),
            (DType::I16, &[1 << 30], None),
            (DType::I8, &[1 << 32, 1 << 32, 1 << 32], None),
        ];
        for (dtype, shape, want) in cases {
            match (byte_len(dtype, shape), want) {
                (Ok(n), Some(w)) => assert_eq!(n, w, "{shape:?}"),
                (Err(TensorError::TooLarge(s)), None) => assert_eq!(s, shape),
                (got, _) => panic!("{dtype:?} {shape:?}: {got:?}"),
            }
        }
        // Decoding a hostile shape fails before it allocates.
        assert!(matches!(
            Tensor::from_le_bytes(DType::I8, &[1 << 40, 1 << 40], &[]),
            Err(TensorError::TooLarge(_))
        ));
    }

    #[test]
    fn bytes_round_trip_for_every_type() {
        let cases = [
            Tensor::I8(
                ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![-128, -1, 0, 1, 2, 127]).unwrap(),
            ),
            Tensor::I16(ArrayD::from_shape_vec(IxDyn(&[3]), vec![i16::MIN, 0, i16::MAX]).unwrap()),
            Tensor::I32(
                ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![i32::MIN, 0x0102_0304]).unwrap(),
            ),
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[0]), vec![]).unwrap()),
        ];
        // A transposed view is not in standard layout: its bytes are encoded in row-major order.
        let view = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1i16, -2, 3, 0x0405])
            .unwrap()
            .reversed_axes();
        let transposed = Tensor::I16(view);
        assert!(matches!(transposed.le_bytes(), Cow::Owned(_)));
        assert_eq!(transposed.to_le_bytes(), [1, 0, 3, 0, 254, 255, 5, 4]);
        for t in cases {
            let bytes = t.to_le_bytes();
            assert_eq!(bytes.len(), t.byte_len());
            assert_eq!(t.le_bytes(), bytes, "{t:?}");
            assert_eq!(
                Tensor::from_le_bytes(t.dtype(), t.shape(), &bytes).unwrap(),
                t
            );
        }
        assert_eq!(
            Tensor::from_le_bytes(DType::I32, &[2], &[0; 7]),
            Err(TensorError::ByteLength {
                dtype: DType::I32,
                shape: vec![2],
                want: 8,
                got: 7
            })
        );
    }

    #[test]
    fn encoding_round_trips_and_rejects_truncation() {
        let cases = [
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1, -2, 3, -4, 5, -6]).unwrap()),
            Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[1]), vec![i32::MIN]).unwrap()),
            Tensor::I16(ArrayD::from_shape_vec(IxDyn(&[0, 4]), vec![]).unwrap()),
        ];
        for t in cases {
            let mut bytes = t.encode().unwrap();
            let len = bytes.len();
            bytes.extend_from_slice(b"rest");
            assert_eq!(Tensor::decode_prefix(&bytes).unwrap(), (t.clone(), len));
            for cut in [0, 5, 6 + 4 * t.shape().len() - 1, len - 1] {
                assert!(
                    Tensor::decode_prefix(&bytes[..cut]).is_err(),
                    "{t:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn header_layout() {
        assert_eq!(
            header(DType::I16, &[2, 3]).unwrap(),
            vec![0, 0, 0, 12, 2, 2, 0, 0, 0, 2, 0, 0, 0, 3]
        );
        assert!(header(DType::I32, &[1 << 20, 1 << 20]).is_err());
    }
}
