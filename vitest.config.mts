import { defineConfig } from 'vitest/config';

// Tests run against the compiled addon and real servers on 127.0.0.1; forks keep native state per file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
