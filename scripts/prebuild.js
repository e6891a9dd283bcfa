#!/usr/bin/env node
'use strict';
// `npm run prebuild` (and `prepack`): puts the addon and the ONNX Runtime libraries it needs into
// prebuilds/<platform>-<arch>/, so that `npm install tensorwire` on the same platform needs no
// compiler, no cmake and no 400 MB ONNX Runtime package. The addon's RPATH is $ORIGIN, so it
// finds libonnxruntime.so.1 beside it; npm drops symlinks from tarballs, so the library is
// stored under its SONAME rather than linked to it. Rebuilds build/Release first when the
// native sources are newer than it (or with --clean).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ORT_NPM_VERSION } = require('./ort-location');
const { libc, platformKey, sourceDigest, newestSourceMtime, root } = require('./native-platform');

const built = path.join(root, 'build', 'Release');
const addonFile = path.join(built, 'tensorwire.node');

function buildIfStale() {
  const clean = process.argv.includes('--clean');
  if (!clean && fs.existsSync(addonFile) && fs.statSync(addonFile).mtimeMs >= newestSourceMtime()) return;
  if (clean) fs.rmSync(path.join(root, 'build'), { recursive: true, force: true });
  execFileSync(process.execPath, [path.join(__dirname, 'build-native.js')], { cwd: root, stdio: 'inherit' });
}

function main() {
  buildIfStale();
  const key = platformKey();
  const out = path.join(root, 'prebuilds', key);
  fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  // GPU provider libraries (npm run install:gpu) are ~180 MB and need CUDA: never packed.
  const wanted = ['tensorwire.node', 'libtensorwire_cuda.so', 'libonnxruntime_providers_shared.so'];
  const files = [];
  for (const f of wanted) {
    if (!fs.existsSync(path.join(built, f))) continue;
    fs.copyFileSync(path.join(built, f), path.join(out, f));
    files.push(f);
  }
  fs.copyFileSync(fs.realpathSync(path.join(built, 'libonnxruntime.so')), path.join(out, 'libonnxruntime.so.1'));
  files.push('libonnxruntime.so.1');
  const manifest = {
    platform: process.platform,
    arch: process.arch,
    libc: libc(),
    glibc: process.report.getReport().header.glibcVersionRuntime ?? null,
    napiVersion: 8,
    onnxruntimeNpm: ORT_NPM_VERSION,
    sourceDigest: sourceDigest(),
    cudaHelper: files.includes('libtensorwire_cuda.so'),
    files,
  };
  fs.writeFileSync(path.join(out, 'prebuild.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  // Prove it loads from where it now lives, in a process of its own.
  execFileSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(out, 'tensorwire.node'))}).engineInfo()`], { stdio: 'inherit' });
  const bytes = files.reduce((n, f) => n + fs.statSync(path.join(out, f)).size, 0);
  console.log(`tensorwire: prebuilt ${path.relative(root, out)}/ (${files.join(', ')}; ${(bytes / 1e6).toFixed(1)} MB)`);
}

main();
