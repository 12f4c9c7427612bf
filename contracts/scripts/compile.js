#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solc-js (package.json) and the pinned settings below
// into contracts/out/<Contract>.json (ABI, bytecode, deployed bytecode and where its immutables
// go). With --check it compiles in memory and exits 1, naming each contract whose committed
// artifact is stale, missing or extra.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const root = path.resolve(__dirname, '..');
const srcDir = path.join(root, 'src');
const outDir = path.join(root, 'out');
const check = process.argv.includes('--check');

// Part of the pin: changing any of these changes every artifact.
const settings = {
  optimizer: { enabled: true, runs: 10000 },
  evmVersion: 'cancun',
  viaIR: false,
  metadata: { bytecodeHash: 'none', appendCBOR: false },
  outputSelection: {
    '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.deployedBytecode.immutableReferences'] },
  },
};

const sources = {};
for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(srcDir, file), 'utf8') };
}
const output = JSON.parse(solc.compile(JSON.stringify({ language: 'Solidity', sources, settings })));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const artifacts = {};
for (const [sourceName, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (c.evm.bytecode.object.length === 0) continue; // interfaces and abstract contracts
    const artifact = {
      contractName: name,
      sourceName: `src/${sourceName}`,
      compiler: { solc: solc.version(), settings: { ...settings, outputSelection: undefined } },
      abi: c.abi,
      bytecode: `0x${c.evm.bytecode.object}`,
      deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
      // Where the constructor writes immutables into the deployed code (bots compare the rest).
      immutableReferences: c.evm.deployedBytecode.immutableReferences || {},
    };
    artifacts[`${name}.json`] = `${JSON.stringify(artifact, null, 2)}\n`;
  }
}

if (check) {
  const committed = fs.existsSync(outDir) ? fs.readdirSync(outDir).filter((f) => f.endsWith('.json')) : [];
  const problems = [];
  for (const [file, text] of Object.entries(artifacts)) {
    const p = path.join(outDir, file);
    if (!fs.existsSync(p)) problems.push(`${file.replace('.json', '')}: no artifact in contracts/out/`);
    else if (fs.readFileSync(p, 'utf8') !== text) problems.push(`${file.replace('.json', '')}: contracts/out/${file} is stale`);
  }
  for (const file of committed) {
    if (!(file in artifacts)) problems.push(`${file.replace('.json', '')}: contracts/out/${file} has no source`);
  }
  if (problems.length > 0) {
    console.error(`stale artifacts (run scripts/compile-contracts.sh):\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`${Object.keys(artifacts).length} artifacts up to date (solc ${solc.version()})`);
} else {
  fs.mkdirSync(outDir, { recursive: true });
  for (const file of fs.readdirSync(outDir).filter((f) => f.endsWith('.json'))) {
    if (!(file in artifacts)) fs.unlinkSync(path.join(outDir, file));
  }
  for (const [file, text] of Object.entries(artifacts)) fs.writeFileSync(path.join(outDir, file), text);
  console.log(`wrote ${Object.keys(artifacts).map((f) => `contracts/out/${f}`).join(', ')} (solc ${solc.version()})`);
}
