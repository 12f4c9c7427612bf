//! Deterministic integer DNN library: integer tensors, ops, graphs, model files, native executors and lowering of each op to an RV32IM kernel of the VM (filled in by the DNN issue).
