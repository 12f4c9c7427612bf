//! The messages of ONNX's `onnx.proto` (IR version 10) that the importer reads, as prost types.
//!
//! Each field keeps its name and number from `onnx.proto`; prost decodes the protobuf wire format
//! (with its recursion limit) and skips the fields not declared here: subgraphs of control-flow
//! attributes, sparse tensors, functions, training info, metadata. A model that needs one of them is
//! refused by the importer because of what it lacks (an unsupported op, a missing initializer), never
//! read wrongly. The importer also builds models with these types in its tests.

/// `ModelProto`: the file's top-level message.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ModelProto {
    /// The IR version of the file.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Operator sets the graph uses, by domain.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// The tool that wrote the file.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `OperatorSetIdProto`: one operator set and its version.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct OperatorSetIdProto {
    /// `""` (or `"ai.onnx"`) for the standard operators.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Its version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`: nodes in topological order, constant tensors, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GraphProto {
    /// The nodes, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (the weights), by name.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// The graph's inputs (before IR version 4 these also list the initializers).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// The graph's outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NodeProto {
    /// Names of the tensors it reads (`""` for an omitted optional input).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the tensors it writes (`""` for an omitted optional output).
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name (may be empty).
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator, e.g. `Conv`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// The operator's domain: `""` or `"ai.onnx"` for the standard ones.
    #[prost(string, tag = "7")]
    pub domain: String,
    /// Its attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto`: a named attribute of a node; `type` says which value field holds it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AttributeProto {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `AttributeType`: which field below holds the value (the `attribute_type` constants).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
    /// A float.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// An integer.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// A UTF-8 string.
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// A tensor.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// A list of floats.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// A list of integers.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

/// Values of `AttributeProto.type` (`AttributeProto.AttributeType` in `onnx.proto`).
pub(crate) mod attribute_type {
    /// `f`.
    pub(crate) const FLOAT: i32 = 1;
    /// `i`.
    pub(crate) const INT: i32 = 2;
    /// `s`.
    pub(crate) const STRING: i32 = 3;
    /// `t`.
    pub(crate) const TENSOR: i32 = 4;
    /// `floats`.
    pub(crate) const FLOATS: i32 = 6;
    /// `ints`.
    pub(crate) const INTS: i32 = 7;
}

/// `ValueInfoProto`: a named, typed tensor of the graph's interface.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ValueInfoProto {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto`, for tensors only (the other members of its `value` oneof are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TypeProto {
    /// `tensor_type`: element type and shape.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TensorTypeProto {
    /// A `TensorProto.DataType` value.
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// The shape, when known.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TensorShapeProto {
    /// The dimensions, outermost first.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a size, or a symbolic name (`dim_param`), or unknown.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Dimension {
    /// A fixed size.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// A symbolic size, e.g. `"batch"`.
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// `TensorProto`: a constant tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TensorProto {
    /// The dimensions, outermost first.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// A `data_type` constant.
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Set when the tensor is one chunk of a larger one.
    #[prost(message, optional, tag = "3")]
    pub segment: Option<Segment>,
    /// FLOAT values, when not in `raw_data`.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// INT64 values, when not in `raw_data`.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Its name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// The values as little-endian bytes (what exporters write).
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// Where the values are when they are outside the file.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// 0: in this message; 1: `EXTERNAL` (in another file).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// Values of `TensorProto.data_type` (`TensorProto.DataType` in `onnx.proto`) that the importer reads.
pub(crate) mod data_type {
    /// 32-bit IEEE float.
    pub(crate) const FLOAT: i32 = 1;
    /// 64-bit signed integer.
    pub(crate) const INT64: i32 = 7;
}

/// `TensorProto.Segment`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Segment {
    /// First index.
    #[prost(int64, tag = "1")]
    pub begin: i64,
    /// One past the last index.
    #[prost(int64, tag = "2")]
    pub end: i64,
}

/// `StringStringEntryProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StringStringEntryProto {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}
