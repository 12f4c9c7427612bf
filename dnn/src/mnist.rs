//! MNIST in the project's fixture formats (`data/mnist/`): labelled splits as safetensors (`images`
//! u8 `[n, 28, 28]`, `labels` u8 `[n]`) and single digits as binary PGM; and the one rule that turns
//! pixels into the int8 model input.

use crate::float::Activation;
use crate::graph::{read_file, ModelError};
use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};
use safetensors::SafeTensors;
use std::path::Path;

/// Side of an MNIST image.
pub const SIDE: usize = 28;

/// A labelled set of 28×28 grey images.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Pixels, 0 = background, 255 = ink, row-major, one image after another.
    pub pixels: Vec<u8>,
    /// Label of each image.
    pub labels: Vec<u8>,
    /// Which split the file says it is (`train`, `test`), from the `split` entry of its
    /// safetensors metadata as `scripts/mnist/export.js` writes it ("test: per label, ..."); `None`
    /// when the file does not say. Lets a caller refuse to calibrate on held-out data.
    pub split: Option<String>,
}

impl Dataset {
    /// Loads a split written by `scripts/mnist/export.js`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = read_file(path)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let get = |name: &str| {
            st.tensor(name).map_err(|e| ModelError::Weight {
                name: name.into(),
                reason: e.to_string(),
            })
        };
        let (images, labels) = (get("images")?, get("labels")?);
        let n = labels.shape().first().copied().unwrap_or(0);
        if images.dtype() != safetensors::Dtype::U8
            || labels.dtype() != safetensors::Dtype::U8
            || images.shape() != [n, SIDE, SIDE]
            || labels.shape() != [n]
        {
            return Err(ModelError::Weight {
                name: "images".into(),
                reason: format!(
                    "{}: expected u8 images [n, 28, 28] and u8 labels [n], got {:?} {:?} and {:?} {:?}",
                    path.display(),
                    images.dtype(),
                    images.shape(),
                    labels.dtype(),
                    labels.shape()
                ),
            });
        }
        let (_, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| ModelError::Safetensors {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let split = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("split"))
            .and_then(|s| s.split(':').next())
            .map(|s| s.trim().to_string());
        Ok(Self {
            pixels: images.data().to_vec(),
            labels: labels.data().to_vec(),
            split,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * SIDE * SIDE..(i + 1) * SIDE * SIDE]
    }
}

/// The int8 model input of an image: `q = (127·pixel + 127) / 255` (integer division), shape
/// `[1, 28, 28]`, scale 1/127 per step.
pub fn quantize_image(pixels: &[u8]) -> Tensor {
    let q = pixels
        .iter()
        .map(|&p| ((127 * u32::from(p) + 127) / 255) as i8)
        .collect();
    Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[1, SIDE, SIDE]), q).expect("28×28 pixels"))
}

/// The f32 model input of an image: `pixel / 255`, shape `[1, 28, 28]`.
pub fn float_image(pixels: &[u8]) -> Activation {
    (
        vec![1, SIDE, SIDE],
        pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
    )
}

/// Reads a binary (P5) 28×28 PGM with maxval 255.
pub fn read_pgm(path: &Path) -> Result<Vec<u8>, ModelError> {
    let bytes = read_file(path)?;
    let bad = |why: &str| ModelError::Weight {
        name: path.display().to_string(),
        reason: format!("not a 28x28 P5 PGM: {why}"),
    };
    // Header: "P5", width, height, maxval, separated by whitespace, then one whitespace byte.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if bytes.get(at) == Some(&b'#') {
            while at < bytes.len() && bytes[at] != b'\n' {
                at += 1;
            }
            continue;
        }
        let start = at;
        while at < bytes.len() && !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if start == at {
            return Err(bad("truncated header"));
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).to_string());
    }
    if fields[0] != "P5" || fields[1] != "28" || fields[2] != "28" || fields[3] != "255" {
        return Err(bad(&format!("header {fields:?}")));
    }
    let pixels = bytes.get(at + 1..).ok_or_else(|| bad("no pixel data"))?;
    if pixels.len() != SIDE * SIDE {
        return Err(bad(&format!("{} pixel bytes", pixels.len())));
    }
    Ok(pixels.to_vec())
}

#[cfg(test)]
mod tests {
    use super::Dataset;
    use std::path::Path;

    /// The split a fixture says it is comes from its metadata, so that importing can refuse to
    /// calibrate on held-out data.
    #[test]
    fn a_split_names_itself() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
        for (file, split) in [("train.safetensors", "train"), ("test.safetensors", "test")] {
            let data = Dataset::load(&root.join(file)).unwrap();
            assert_eq!(data.split.as_deref(), Some(split), "{file}");
        }
    }
}
