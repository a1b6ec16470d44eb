//! The GGUF file format (llama.cpp's, `ggml/docs/gguf.md` in its repository), written: a header,
//! typed metadata, tensor descriptions, then the aligned tensor data. Only what an export needs:
//! every metadata type, and tensors in F32, F16, BF16 and Q8_0.
//!
//! All numbers are little-endian. Strings are a u64 byte length then UTF-8 bytes, no terminator.

use tch::{Kind, Tensor};

/// `GGUF` read as a little-endian u32.
const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;
/// The default alignment of tensor data (`general.alignment` changes it; we keep the default).
pub const ALIGNMENT: usize = 32;

/// A metadata value ("gguf_metadata_value_type" in the spec: the u32 written before each value).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// An array of one type; its element type is written once, before its length.
    Array(Vec<Value>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::U32(v) => out.extend(v.to_le_bytes()),
            Value::I32(v) => out.extend(v.to_le_bytes()),
            Value::F32(v) => out.extend(v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::String(s) => write_string(out, s),
            Value::Array(items) => {
                // An empty array still names a type; strings are as good as any.
                let item_type = items.first().map_or(8, Value::type_id);
                out.extend(item_type.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                items.iter().for_each(|item| item.write(out));
            }
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// The key–value pairs of a file's metadata, in the order they are written.
pub type Metadata = Vec<(String, Value)>;

/// How a tensor's values are stored ("ggml_type").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    /// Blocks of 32 values: an f16 scale `d`, then 32 signed bytes `q`; a value is `d·q`.
    Q8_0,
}

/// Values per Q8_0 block.
pub const Q8_0_BLOCK: i64 = 32;

impl TensorType {
    fn id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Q8_0 => 8,
            TensorType::BF16 => 30,
        }
    }

    /// The bytes of `t` (any shape; its last dimension is the row) in this type.
    pub fn encode(self, t: &Tensor) -> Vec<u8> {
        let t = t.to_kind(Kind::Float).contiguous();
        match self {
            TensorType::F32 => bytes_of(&t, Kind::Float),
            TensorType::F16 => bytes_of(&t.to_kind(Kind::Half), Kind::Half),
            TensorType::BF16 => bytes_of(&t.to_kind(Kind::BFloat16), Kind::BFloat16),
            TensorType::Q8_0 => {
                let blocks = t.reshape([-1, Q8_0_BLOCK]);
                let (scales, quants) = quantize_q8_0(&blocks);
                let scales = bytes_of(&scales.to_kind(Kind::Half), Kind::Half);
                let quants = bytes_of(&quants, Kind::Int8);
                let mut out = Vec::with_capacity(scales.len() + quants.len());
                for (scale, block) in scales.chunks(2).zip(quants.chunks(Q8_0_BLOCK as usize)) {
                    out.extend(scale);
                    out.extend(block);
                }
                out
            }
        }
    }

    /// `t` as stored in this type and read back, in fp32: what llama.cpp computes with.
    pub fn round_trip(self, t: &Tensor) -> Tensor {
        let t = t.to_kind(Kind::Float);
        match self {
            TensorType::F32 => t,
            TensorType::F16 => t.to_kind(Kind::Half).to_kind(Kind::Float),
            TensorType::BF16 => t.to_kind(Kind::BFloat16).to_kind(Kind::Float),
            TensorType::Q8_0 => {
                let (scales, quants) = quantize_q8_0(&t.reshape([-1, Q8_0_BLOCK]));
                let scales = scales.to_kind(Kind::Half).to_kind(Kind::Float);
                (quants.to_kind(Kind::Float) * scales.unsqueeze(1)).reshape(t.size())
            }
        }
    }
}

/// Q8_0 of `blocks [n, 32]`: scales `d = max|x| / 127` (fp32) and quants `round(x / d)` (int8),
/// as llama.cpp's reference quantizer computes them.
fn quantize_q8_0(blocks: &Tensor) -> (Tensor, Tensor) {
    let scales = blocks.abs().amax([1].as_slice(), false) / 127.0;
    let inverse = scales.reciprocal().nan_to_num(0.0, Some(0.0), Some(0.0));
    // roundf: halves away from zero (libtorch's round takes them to even).
    let scaled = blocks * inverse.unsqueeze(1);
    let quants = (scaled.sign() * (scaled.abs() + 0.5).floor()).to_kind(Kind::Int8);
    (scales, quants)
}

/// The raw bytes of a contiguous CPU tensor of `kind`.
fn bytes_of(t: &Tensor, kind: Kind) -> Vec<u8> {
    let t = t.contiguous();
    let numel = t.numel();
    match kind {
        Kind::Float => {
            let mut values = vec![0f32; numel];
            t.copy_data(&mut values, numel);
            values.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        Kind::Half | Kind::BFloat16 => {
            let bits = t.view_dtype(Kind::Int16);
            let mut values = vec![0i16; numel];
            bits.copy_data(&mut values, numel);
            values.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        _ => {
            let mut values = vec![0i8; numel];
            t.copy_data(&mut values, numel);
            values.iter().map(|&v| v as u8).collect()
        }
    }
}

/// A tensor to write: its name, its shape as PyTorch gives it (`[rows, row length]`), its type
/// and its encoded bytes.
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<i64>,
    pub tensor_type: TensorType,
    pub bytes: Vec<u8>,
}

/// The bytes of a GGUF file with `metadata` (in order) and `tensors`.
pub fn serialize(metadata: &[(String, Value)], tensors: &[TensorEntry]) -> Vec<u8> {
    // Header: magic, version, tensor count, metadata count.
    let mut out = Vec::new();
    out.extend(MAGIC);
    out.extend(VERSION.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    // Metadata: key, value type, value.
    for (key, value) in metadata {
        write_string(&mut out, key);
        out.extend(value.type_id().to_le_bytes());
        value.write(&mut out);
    }
    // Tensor infos: name, dimension count, dimensions innermost first (ggml's `ne`), type, and
    // the offset of its data from the start of the data section, aligned.
    let mut offset = 0usize;
    for tensor in tensors {
        write_string(&mut out, &tensor.name);
        out.extend((tensor.shape.len() as u32).to_le_bytes());
        for &dim in tensor.shape.iter().rev() {
            out.extend((dim as u64).to_le_bytes());
        }
        out.extend(tensor.tensor_type.id().to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset = aligned(offset + tensor.bytes.len());
    }
    // Tensor data, each padded to the alignment, starting aligned.
    out.resize(aligned(out.len()), 0);
    for tensor in tensors {
        out.extend(&tensor.bytes);
        out.resize(aligned(out.len()), 0);
    }
    out
}

fn aligned(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}
