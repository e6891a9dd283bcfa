'use strict';
// What identifies a prebuilt addon: the platform it runs on (os, cpu, C library) and the native
// sources it was compiled from. scripts/prebuild.js records both in prebuilds/<key>/prebuild.json;
// scripts/install-native.js uses a prebuilt only when both match, so a checkout whose native/
// sources changed after `npm pack` rebuilds instead of loading a stale addon.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { ORT_NPM_VERSION } = require('./ort-location');

const root = path.join(__dirname, '..');

/** 'glibc', 'musl' or '' (not Linux): a glibc build does not load on musl, nor the reverse. */
function libc() {
  if (process.platform !== 'linux') return '';
  const header = process.report.getReport().header;
  return header.glibcVersionRuntime ? 'glibc' : 'musl';
}

/** The prebuilds/ folder name for this machine, e.g. linux-x64 (glibc) or linux-x64-musl. */
function platformKey() {
  const c = libc();
  return `${process.platform}-${process.arch}${c === 'musl' ? '-musl' : ''}`;
}

function listSources(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'ort') out.push(...listSources(file));
    } else if (/\.(cpp|hpp|h|cu)$/.test(entry.name)) out.push(file);
  }
  return out;
}

/** sha256 over the addon's sources, CMakeLists.txt and the ONNX Runtime version they build against. */
function sourceDigest() {
  const hash = crypto.createHash('sha256');
  hash.update(`ort ${ORT_NPM_VERSION}\n`);
  for (const file of [path.join(root, 'CMakeLists.txt'), ...listSources(path.join(root, 'native'))]) {
    hash.update(`${path.relative(root, file)}\n`);
    hash.update(fs.readFileSync(file));
  }
  return hash.digest('hex');
}

/** Newest modification time among the native sources (to tell whether build/ is stale). */
function newestSourceMtime() {
  return Math.max(...[path.join(root, 'CMakeLists.txt'), ...listSources(path.join(root, 'native'))].map((f) => fs.statSync(f).mtimeMs));
}

module.exports = { libc, platformKey, sourceDigest, newestSourceMtime, root };
