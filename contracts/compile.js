// Compiles contracts/src/*.sol offline with solcjs (npm package `solc`, pinned in package.json)
// into contracts/artifacts/holdfast/<Name>.json ({contractName, compiler, abi, bytecode}).
// Regenerate from the repo root: scripts/install-node-tools && node contracts/compile.js
// The output is deterministic: unchanged sources give byte-identical artifacts.
const fs = require('fs');
const path = require('path');
const solc = require('solc');
const srcDir = path.join(__dirname, 'src');
const outDir = path.join(__dirname, 'artifacts', 'holdfast');
const sources = {};
for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol'))) {
  sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun', outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join('\n'));
  process.exit(1);
}
fs.mkdirSync(outDir, { recursive: true });
for (const file of Object.keys(out.contracts)) {
  for (const [name, c] of Object.entries(out.contracts[file])) {
    if (!c.evm.bytecode.object) continue; // interfaces
    const artifact = { contractName: name, compiler: `solc ${solc.version()}`, abi: c.abi, bytecode: '0x' + c.evm.bytecode.object };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact) + '\n');
    console.log(`${name}: ${c.evm.bytecode.object.length / 2} bytes`);
  }
}
