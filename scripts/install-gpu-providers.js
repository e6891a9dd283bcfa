#!/usr/bin/env node
'use strict';
// Opt-in: installs ONNX Runtime's CUDA and TensorRT provider libraries (npm package
// com.github.asus4.onnxruntime.linux-x64-gpu, ~180 MB) next to libonnxruntime.so, beside the
// addon (build/Release or prebuilds/<platform>), where ORT looks for them. Needs the CUDA 13
// runtime and cuDNN 9 at run time.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { GPU_PACKAGE, ORT_NPM_VERSION } = require('./ort-location');

const { platformKey } = require('./native-platform');

// Beside the ONNX Runtime the addon loads: a source build (build/Release) wins over the
// package's prebuilt, as in lib/engine/native-binding.ts.
const outDir = [path.join(__dirname, '..', 'build', 'Release'), path.join(__dirname, '..', 'prebuilds', platformKey())]
  .find((dir) => fs.existsSync(path.join(dir, 'tensorwire.node')) && fs.existsSync(path.join(dir, 'libonnxruntime.so.1')));
if (!outDir) {
  console.error('tensorwire: no installed addon found: run `npm ci` or `npm run build` (in a checkout) or `npm rebuild tensorwire` first');
  process.exit(1);
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tw-gpu-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
console.log(`fetching ${GPU_PACKAGE}@${ORT_NPM_VERSION} from the npm registry...`);
const tgz = execFileSync(npm, ['pack', `${GPU_PACKAGE}@${ORT_NPM_VERSION}`, '--silent'], { cwd: work }).toString().trim().split('\n').pop();
execFileSync('tar', ['xzf', tgz, '--wildcards', 'package/Plugins/Linux/x64/*.so'], { cwd: work });
const libDir = path.join(work, 'package', 'Plugins', 'Linux', 'x64');
for (const f of fs.readdirSync(libDir)) {
  if (!f.startsWith('libonnxruntime_providers_')) continue;
  fs.copyFileSync(path.join(libDir, f), path.join(outDir, f));
  console.log(`installed ${path.join(outDir, f)}`);
}
fs.rmSync(work, { recursive: true, force: true });
