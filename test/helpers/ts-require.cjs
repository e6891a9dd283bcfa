/**
 * Lets a child `node` process run the TypeScript sources directly (`node -r
 * ./test/helpers/ts-require.cjs lib/cli.ts serve ...`), so the shutdown tests exercise the CLI
 * as written rather than a dist/ build that may be stale. Type-checking is tsc's job; this
 * only strips types (TypeScript's transpileModule), file by file, as they are required.
 */
'use strict';
const fs = require('node:fs');
const ts = require('typescript');

const options = { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false };

require.extensions['.ts'] = function compileTs(module, filename) {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), { compilerOptions: options, fileName: filename });
  module._compile(outputText, filename);
};
