"""Baselines for `opml bench gemm`: onnxruntime's int8 MatMulInteger and numpy's f32 matmul on the
same shapes and thread count, as a table (G MAC/s = m*k*n / median time).

Usage: ort_gemm.py --threads 2 --runs 5 1x4096x4096 16x384x1536 ...
"""
import argparse
import os
import sys
import time


def median_secs(runs, f):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("shapes", nargs="+", help="MxKxN, e.g. 1x4096x4096")
    args = p.parse_args()
    # numpy's BLAS reads its thread count at import.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    print(f"{'shape':>16} {'ort int8 ms':>12} {'ort GMAC/s':>11} {'np f32 ms':>10} {'np GMAC/s':>10}")
    rng = np.random.default_rng(17)
    for shape in args.shapes:
        try:
            m, k, n = (int(v) for v in shape.split("x"))
        except ValueError:
            sys.exit(f"shape {shape!r}: expected MxKxN")
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        w = rng.integers(-128, 128, (k, n), dtype=np.int8)
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
            "gemm",
            [helper.make_tensor_value_info("a", TensorProto.INT8, [m, k])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
            [helper.make_tensor("w", TensorProto.INT8, [k, n], w.tobytes(), raw=True)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        want = a.astype(np.int64) @ w.astype(np.int64)
        got = sess.run(None, {"a": a})[0]
        if not np.array_equal(got, want):
            sys.exit(f"{shape}: onnxruntime's MatMulInteger disagrees with numpy")
        ort_s = median_secs(args.runs, lambda: sess.run(None, {"a": a}))
        af, wf = a.astype(np.float32), w.astype(np.float32)
        np_s = median_secs(args.runs, lambda: af @ wf)
        macs = m * k * n
        print(f"{shape:>16} {ort_s * 1e3:>12.3f} {macs / ort_s / 1e9:>11.2f} {np_s * 1e3:>10.3f} {macs / np_s / 1e9:>10.2f}")


if __name__ == "__main__":
    main()
