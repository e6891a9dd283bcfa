#!/usr/bin/env node
'use strict';
// Builds the addon with cmake-js against ONNX Runtime (see ort-location.js) and copies the ORT
// libraries next to it (the addon's RPATH is $ORIGIN), with the SONAME link libonnxruntime.so.1.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { locateOrt } = require('./ort-location');

const root = path.join(__dirname, '..');
const outDir = path.join(root, 'build', 'Release');

function copyOrtLibraries(libDir) {
  fs.mkdirSync(outDir, { recursive: true });
  const libs = fs.readdirSync(libDir).filter((f) => /^libonnxruntime.*\.so(\.\d+)*$/.test(f));
  if (!libs.some((f) => f.startsWith('libonnxruntime.so'))) throw new Error(`no libonnxruntime.so in ${libDir}`);
  for (const f of libs) {
    const src = fs.realpathSync(path.join(libDir, f));
    const dst = path.join(outDir, f);
    fs.rmSync(dst, { force: true });
    fs.copyFileSync(src, dst);
  }
  const soname = path.join(outDir, 'libonnxruntime.so.1');
  if (!fs.existsSync(soname)) fs.symlinkSync('libonnxruntime.so', soname);
  return libs;
}

function main() {
  const ort = locateOrt();
  console.log(`tensorwire: ONNX Runtime from ${ort.source}`);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const addonApi = path.dirname(require.resolve('node-addon-api/package.json'));
  const args = [cmakeJs, 'compile', '--out', 'build', '--config', 'Release',
    `--CDORT_INCLUDE_DIR=${ort.includeDir}`, `--CDORT_LIB_DIR=${ort.libDir}`, `--CDNODE_ADDON_API_DIR=${addonApi}`];
  if (process.env.TW_NO_CUDA) args.push('--CDTW_NO_CUDA=1');
  execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  // Some cmake-js versions put outputs in build/ rather than build/Release.
  for (const f of ['tensorwire.node', 'libtensorwire_cuda.so']) {
    const loose = path.join(root, 'build', f);
    if (fs.existsSync(loose) && !fs.existsSync(path.join(outDir, f))) fs.renameSync(loose, path.join(outDir, f));
  }
  // After the build: cmake-js may clean build/ while configuring.
  const libs = copyOrtLibraries(ort.libDir);
  console.log(`tensorwire: built build/Release/tensorwire.node with ${libs.join(', ')}`);
}

main();
