// ESLint for the TypeScript sources, tests and benches (run by `npm test` after tsc).
// typescript-eslint's recommended set plus type-aware rules that catch real bugs in a server
// full of promises: a floating or misused promise is a lost error or an unhandled rejection.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/**', 'build/**', 'node_modules/**', 'native/**', 'bench/peers/**', 'examples/data/**', 'coverage/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { project: ['./tsconfig.test.json', './examples/tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A promise nobody awaits loses its rejection (an unhandled rejection kills the process).
      '@typescript-eslint/no-floating-promises': 'error',
      // An async function where a void callback is expected (event handlers, uWS callbacks)
      // swallows its rejection the same way.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      // `await` of a non-promise usually means a missing call or a sync function mistaken for async.
      '@typescript-eslint/await-thenable': 'error',
      // Intentionally unused names start with `_`.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // A `switch` over a union must handle every member.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // prom-client calls a metric's collect() with `this` bound to the metric, so the object
      // that owns it is reached as `self`; any other alias of `this` is a mistake.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
    },
  },
  {
    // Findings in tests that other work is editing right now; reported to the lead, shown as
    // warnings until fixed there. Delete this block (making them errors) once they are.
    files: [
      'test/bench-cli.test.ts',
      'test/client-http.test.ts',
      'test/core-served-model.test.ts',
      'test/integration-hotswap.test.ts',
      'test/integration-stream-flow.test.ts',
      'test/integration-stream.test.ts',
      'test/server-http.test.ts',
      'test/server-stream.test.ts',
    ],
    rules: {
      'no-regex-spaces': 'warn',
      '@typescript-eslint/no-unused-vars': ['warn', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'warn',
      '@typescript-eslint/no-require-imports': 'warn',
    },
  },
  {
    // Plain Node scripts (CommonJS): require is how they load modules.
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', __filename: 'readonly', process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', exports: 'writable' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
