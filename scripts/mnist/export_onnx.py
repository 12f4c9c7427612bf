#!/usr/bin/env python3
"""Writes models/mnist-cnn/float.onnx: the f32 MNIST CNN of models/mnist-cnn/float.{json,safetensors}
as an ONNX graph, built with onnx.helper, so that `opml model import` can be tested on ONNX input.

The graph is the one a PyTorch export of the same network gives: Conv, Relu, MaxPool, Flatten and
Gemm (transB=1) nodes in one chain, with the float weights as initializers under their float.json
names (conv1.weight, ...). Node names are the float.json layer names, so that importing the ONNX file
gives the same integer model (names, weights, commitment) as importing float.json.

The output is deterministic (fixed IR and opset versions, no timestamps): rerunning rewrites the same
bytes. Before writing, the graph is checked with onnx.checker and run with onnx's reference evaluator
on the ten sample digits of float.json, whose logits it must reproduce.

Usage: scripts/mnist/export-onnx.sh (creates the venv), or
       python scripts/mnist/export_onnx.py [--model models/mnist-cnn] [--out FILE]
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from safetensors.numpy import load_file

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OPSET = 13
IR_VERSION = 8  # the IR version of opset 13
PRODUCER = "opml scripts/mnist/export_onnx.py"


def layer_nodes(layer, index, x):
    """ONNX nodes for one float.json layer reading tensor `x`; returns (nodes, output name)."""
    kind = layer["kind"]
    if kind == "conv2d":
        name = layer["name"]
        if layer["groups"] != 1 or layer["dilation"] != [1, 1] or layer["padding_mode"] != "zeros":
            sys.exit(f"{name}: only groups 1, dilation 1 and zero padding are exported")
        py, px = layer["padding"]
        node = helper.make_node(
            "Conv", [x, layer["weight"]["name"], layer["bias"]["name"]], [name], name=name,
            kernel_shape=layer["kernel"], strides=layer["stride"], pads=[py, px, py, px],
            dilations=[1, 1], group=1)
        return [node], name
    if kind == "linear":
        name = layer["name"]
        node = helper.make_node(
            "Gemm", [x, layer["weight"]["name"], layer["bias"]["name"]], [name], name=name,
            alpha=1.0, beta=1.0, transA=0, transB=1)
        return [node], name
    if kind == "relu":
        name = f"relu{index}"
        return [helper.make_node("Relu", [x], [name], name=name)], name
    if kind == "maxpool2d":
        name = f"pool{index}"
        if layer["padding"] != [0, 0]:
            sys.exit(f"layer {index}: a padded max pool is not exported")
        node = helper.make_node(
            "MaxPool", [x], [name], name=name, kernel_shape=layer["kernel"], strides=layer["stride"])
        return [node], name
    if kind == "flatten":
        name = f"flatten{index}"
        return [helper.make_node("Flatten", [x], [name], name=name, axis=1)], name
    sys.exit(f"layer {index}: kind {kind!r} has no ONNX export here")


def build(model_dir):
    """The ONNX model of float.json + its safetensors, and the manifest (for the self-check)."""
    with open(os.path.join(model_dir, "float.json")) as f:
        manifest = json.load(f)
    weights = load_file(os.path.join(model_dir, manifest["weights"]))
    nodes, x = [], "input"
    for index, layer in enumerate(manifest["layers"]):
        new, x = layer_nodes(layer, index, x)
        nodes += new
    # Rename the last node's output to "logits" (the graph output).
    nodes[-1].output[0] = "logits"
    shape = [1] + manifest["input"]["shape"]
    graph = helper.make_graph(
        nodes,
        manifest["model"],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1] + manifest["output"]["shape"])],
        initializer=[numpy_helper.from_array(weights[n], n) for n in sorted(weights)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        doc_string=f"{manifest['model']}: f32 weights of {manifest['weights']}, layers of float.json",
    )
    onnx.checker.check_model(model, full_check=True)
    return model, manifest


def self_check(model, manifest):
    """Runs the graph on the sample digits of float.json and compares with their recorded logits."""
    session = ReferenceEvaluator(model)
    for sample in manifest["sample_logits_f32"]:
        path = os.path.join(REPO, sample["sample"])
        with open(path, "rb") as f:
            data = f.read()
        pixels = np.frombuffer(data[-784:], dtype=np.uint8).reshape(1, 1, 28, 28)
        (logits,) = session.run(None, {"input": pixels.astype(np.float32) / np.float32(255)})
        want = np.array(sample["logits"], dtype=np.float32)
        if not np.allclose(logits[0], want, atol=1e-4, rtol=1e-4):
            sys.exit(f"{sample['sample']}: ONNX logits {logits[0]} differ from float.json {want}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join(REPO, "models", "mnist-cnn"),
                        help="directory of float.json and its safetensors (default models/mnist-cnn)")
    parser.add_argument("--out", help="ONNX file to write (default MODEL/float.onnx)")
    args = parser.parse_args()
    out = args.out or os.path.join(args.model, "float.onnx")
    model, manifest = build(args.model)
    self_check(model, manifest)
    data = model.SerializeToString(deterministic=True)
    with open(out, "wb") as f:
        f.write(data)
    print(f"{out}: {len(data)} bytes, {len(model.graph.node)} nodes, "
          f"{len(model.graph.initializer)} initializers, opset {OPSET}")


if __name__ == "__main__":
    main()
