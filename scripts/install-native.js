#!/usr/bin/env node
'use strict';
// The package's install script. Uses the prebuilt addon in prebuilds/<platform>-<arch>/ when it
// was built for this platform and these sources and it loads; otherwise builds from source
// (scripts/build-native.js); `--build-from-source` (npm's npm_config_build_from_source) skips
// the prebuilt (so does TW_BUILD_FROM_SOURCE=1). When neither works it says what is missing and what to run, and fails the install
// rather than leaving a package that throws at first use.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { platformKey, sourceDigest, root } = require('./native-platform');

const BUILD_PACKAGES = ['cmake-js', 'node-addon-api', 'com.github.asus4.onnxruntime'];

function log(line) {
  console.log(`tensorwire: ${line}`);
}

function buildFromSourceRequested() {
  const flag = process.env.npm_config_build_from_source;
  // TW_BUILD_FROM_SOURCE=1 for npm versions that stop passing unknown flags to scripts.
  return process.argv.includes('--build-from-source') || flag === 'true' || flag === 'tensorwire' || process.env.TW_BUILD_FROM_SOURCE === '1';
}

/** Loads `file` in a child process (a bad library must not take this one down): '' or why not. */
function loadError(file) {
  try {
    execFileSync(process.execPath, ['-e', `require(${JSON.stringify(file)}).engineInfo()`], { stdio: 'pipe' });
    return '';
  } catch (e) {
    const text = String(e.stderr || e.message);
    const line = text.split('\n').find((l) => /Error|error:/.test(l)) || text.split('\n')[0];
    return line.trim().slice(0, 300);
  }
}

/** Why the prebuilt for this machine cannot be used, or '' when it can. */
function prebuiltProblem(key) {
  const dir = path.join(root, 'prebuilds', key);
  const manifestFile = path.join(dir, 'prebuild.json');
  if (!fs.existsSync(manifestFile)) {
    const have = fs.existsSync(path.join(root, 'prebuilds')) ? fs.readdirSync(path.join(root, 'prebuilds')) : [];
    return `no prebuilt addon for ${key} (this package has: ${have.length ? have.join(', ') : 'none'})`;
  }
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  if (manifest.sourceDigest !== sourceDigest()) return `the prebuilt addon in prebuilds/${key}/ was built from other native sources`;
  const err = loadError(path.join(dir, 'tensorwire.node'));
  return err ? `the prebuilt addon prebuilds/${key}/tensorwire.node does not load: ${err}` : '';
}

function onPath(name) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function resolvable(pkg) {
  try {
    require.resolve(`${pkg}/package.json`, { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

/** What a source build lacks on this machine (empty when it can be tried). */
function missingForSourceBuild() {
  const missing = [];
  if (!onPath('cmake')) missing.push('cmake (not on PATH)');
  const compilers = [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean);
  if (!compilers.some(onPath)) missing.push(`a C++17 compiler (none of ${compilers.join(', ')} on PATH)`);
  const packages = BUILD_PACKAGES.filter((p) => !(p === 'com.github.asus4.onnxruntime' && process.env.ORT_HOME) && !resolvable(p));
  if (packages.length) missing.push(`the npm packages ${packages.join(', ')} (not installed)`);
  return missing;
}

function howToBuild() {
  const dev = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).devDependencies || {};
  const specs = BUILD_PACKAGES.map((p) => (dev[p] ? `${p}@${dev[p]}` : p)).join(' ');
  return [
    'To build it from source:',
    '  1. install cmake (>= 3.18) and a C++17 compiler (Debian/Ubuntu: apt-get install -y cmake g++)',
    `  2. npm install --save-dev ${specs}`,
    '     (or point ORT_HOME at an ONNX Runtime 1.29 release with include/ and lib/ instead of the last one)',
    '  3. npm rebuild tensorwire --build-from-source',
    'Prebuilt addons ship for: linux-x64 with glibc (see docs/deploy.md, "Installing").',
  ].join('\n');
}

function fail(reasons) {
  console.error(`tensorwire: could not install the native addon for ${platformKey()} (Node.js ${process.version}).`);
  for (const r of reasons) console.error(`  - ${r}`);
  console.error(howToBuild());
  process.exit(1);
}

function main() {
  const key = platformKey();
  const reasons = [];
  if (buildFromSourceRequested()) {
    log('building from source (--build-from-source)');
  } else {
    const problem = prebuiltProblem(key);
    if (!problem) {
      log(`using the prebuilt addon in prebuilds/${key}/`);
      return;
    }
    reasons.push(problem);
    log(`${problem}; building from source`);
  }
  const missing = missingForSourceBuild();
  if (missing.length) fail([...reasons, `building from source needs ${missing.join('; ')}`]);
  try {
    execFileSync(process.execPath, [path.join(__dirname, 'build-native.js')], { cwd: root, stdio: 'inherit' });
  } catch {
    fail([...reasons, 'the source build failed (its output is above)']);
  }
}

main();
