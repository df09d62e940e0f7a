#!/usr/bin/env node
// A stand-in for a native `solc` binary, backed by the pinned npm solcjs (Emscripten build).
// It answers the two calls our tools make:
//   solc_standard_json.js --version
//   solc_standard_json.js --standard-json [--base-path P] [--include-path P]... [--allow-paths ...]
// Standard-JSON input comes on stdin, output goes to stdout. Imports are resolved from the base
// path, the include paths, the working directory and node_modules (for @openzeppelin/...), so
// py-solc-x, Ape (via SOLCX_BINARY_PATH) and scripts/build_contracts.py can all use it offline.
//
// Never call process.exit() after writing the output: stdout to a pipe is asynchronous in node,
// and exiting early truncates it at 64 KB. Set process.exitCode and let the process end.
'use strict';

const fs = require('fs');
const path = require('path');

const repoRoot = path.resolve(__dirname, '..');
const solc = require(path.join(repoRoot, 'node_modules', 'solc'));

function parseArguments(argv) {
  const options = { version: false, standardJson: false, basePath: null, includePaths: [] };
  for (let index = 0; index < argv.length; index += 1) {
    const argument = argv[index];
    if (argument === '--version') options.version = true;
    else if (argument === '--standard-json') options.standardJson = true;
    else if (argument === '--base-path') options.basePath = argv[++index];
    else if (argument === '--include-path') options.includePaths.push(argv[++index]);
    else if (argument === '--allow-paths') index += 1; // solcjs reads only what we hand it.
    else if (argument.startsWith('--allow-paths=')) continue;
    else if (argument.startsWith('--base-path=')) options.basePath = argument.split('=', 2)[1];
    else if (argument.startsWith('--include-path=')) options.includePaths.push(argument.split('=', 2)[1]);
  }
  return options;
}

function importResolver(options) {
  const roots = [];
  if (options.basePath) roots.push(path.resolve(options.basePath));
  for (const includePath of options.includePaths) roots.push(path.resolve(includePath));
  roots.push(process.cwd(), repoRoot, path.join(repoRoot, 'node_modules'));
  return function findImports(sourceUnitName) {
    const candidates = path.isAbsolute(sourceUnitName)
      ? [sourceUnitName]
      : roots.map((root) => path.join(root, sourceUnitName));
    for (const candidate of candidates) {
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      }
    }
    return { error: `File not found: ${sourceUnitName} (searched ${roots.join(', ')})` };
  };
}

function main() {
  const options = parseArguments(process.argv.slice(2));
  if (options.version) {
    // The same shape a native solc prints; py-solc-x and Ape parse the "Version:" line.
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (!options.standardJson) {
    process.stderr.write('usage: solc_standard_json.js --version | --standard-json < input.json\n');
    process.exitCode = 2;
    return;
  }
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: importResolver(options) });
  process.stdout.write(output);
}

main();
