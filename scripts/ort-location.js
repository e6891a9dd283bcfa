'use strict';
// Where ONNX Runtime's headers and libraries come from: ORT_HOME (an official release with
// include/ and lib/) when set, otherwise the npm package com.github.asus4.onnxruntime.
const fs = require('node:fs');
const path = require('node:path');

const NPM_PACKAGE = 'com.github.asus4.onnxruntime';
const GPU_PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu';
const ORT_NPM_VERSION = '0.4.9'; // ONNX Runtime 1.29.0

function locateOrt() {
  if (process.env.ORT_HOME) {
    const home = path.resolve(process.env.ORT_HOME);
    const includeDir = fs.existsSync(path.join(home, 'include', 'onnxruntime_cxx_api.h'))
      ? path.join(home, 'include')
      : path.join(home, 'include', 'onnxruntime');
    return { source: `ORT_HOME=${home}`, includeDir, libDir: path.join(home, 'lib') };
  }
  let pkgDir;
  try {
    pkgDir = path.dirname(require.resolve(`${NPM_PACKAGE}/package.json`, { paths: [path.join(__dirname, '..')] }));
  } catch {
    throw new Error(`ONNX Runtime not found: install the npm package ${NPM_PACKAGE}@${ORT_NPM_VERSION} (npm ci) or set ORT_HOME to an ONNX Runtime release`);
  }
  const includeDir = path.join(pkgDir, 'Plugins', 'iOS~', 'onnxruntime.xcframework', 'ios-arm64_x86_64-simulator', 'onnxruntime.framework', 'Headers');
  const libDir = path.join(pkgDir, 'Plugins', 'Linux', process.arch === 'arm64' ? 'arm64' : 'x64');
  return { source: `${NPM_PACKAGE} (${pkgDir})`, includeDir, libDir };
}

module.exports = { locateOrt, NPM_PACKAGE, GPU_PACKAGE, ORT_NPM_VERSION };
