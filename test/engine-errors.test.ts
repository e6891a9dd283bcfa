/** Every engine failure crosses the boundary as a TensorwireError with a stable code. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engineInfo, loadModel, ortProviderOptions } from '../lib/engine';
import { mlpModel, writeCorruptModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('load failures', () => {
  it('names the missing file and ORT reason (MODEL_LOAD_FAILED)', async () => {
    const path = join(tmp.dir, 'missing.onnx');
    // Named by base name: messages reach clients and never carry absolute paths.
    const err = await loadModel(path).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'TensorwireError', code: 'MODEL_LOAD_FAILED', status: 400, message: expect.stringContaining('missing.onnx') });
    expect((err as Error).message).not.toContain(tmp.dir);
  });

  it('names a corrupt file (MODEL_LOAD_FAILED)', async () => {
    const path = await writeCorruptModel(join(tmp.dir, 'corrupt.onnx'));
    const err = await loadModel(path).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MODEL_LOAD_FAILED' });
    expect((err as Error).message).toContain('corrupt.onnx');
    expect((err as Error).message).not.toContain(tmp.dir);
    expect((err as Error).message.length).toBeGreaterThan('cannot load model corrupt.onnx: '.length + 20); // carries ORT's reason
  });

  it('never falls back to the CPU: cuda without its provider library is PROVIDER_UNAVAILABLE naming the library and the fix', async () => {
    const path = await mlpModel(tmp.dir);
    const err = await loadModel(path, { provider: { kind: 'cuda' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PROVIDER_UNAVAILABLE' });
    const message = (err as Error).message;
    // Either the ORT CUDA provider library or the CUDA runtime/device is what is missing here.
    expect(message).toMatch(/libonnxruntime_providers_cuda\.so|libcudart|CUDA device|libtensorwire_cuda/);
    expect(message).toMatch(/npm run install:gpu|LD_LIBRARY_PATH|CUDA/);
  });

  it('tensorrt without TensorRT is PROVIDER_UNAVAILABLE naming the library', async () => {
    const path = await mlpModel(tmp.dir);
    const err = await loadModel(path, { provider: { kind: 'tensorrt', fp16: true } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PROVIDER_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/libonnxruntime_providers_(cuda|tensorrt)\.so|libnvinfer\.so\.10/);
  });

  it('rejects bad options with INVALID_INPUT', async () => {
    const path = await mlpModel(tmp.dir);
    await expect(loadModel(path, { instances: 0 })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('instances') });
    await expect(loadModel(path, { slotsPerInstance: 1 })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});

describe('provider options', () => {
  it('map TensorRT and CUDA options onto the keys ONNX Runtime reads', () => {
    expect(ortProviderOptions({ kind: 'tensorrt', fp16: true, engineCacheEnable: true, engineCachePath: '/cache', maxWorkspaceSizeBytes: 1 << 30, profileMinShapes: 'x:1x3' })).toEqual({
      trt_fp16_enable: '1',
      trt_engine_cache_enable: '1',
      trt_engine_cache_path: '/cache',
      trt_max_workspace_size: String(1 << 30),
      trt_profile_min_shapes: 'x:1x3',
    });
    expect(ortProviderOptions({ kind: 'cuda', memoryLimitBytes: 1024, cudnnConvAlgoSearch: 'HEURISTIC', arenaExtendStrategy: 'kSameAsRequested' })).toEqual({
      gpu_mem_limit: '1024',
      cudnn_conv_algo_search: 'HEURISTIC',
      arena_extend_strategy: 'kSameAsRequested',
    });
  });
});

describe('run failures', () => {
  it('rejects a shape of the wrong rank with INVALID_INPUT, and a run after unload with UNAVAILABLE', async () => {
    const model = await loadModel(await mlpModel(tmp.dir));
    const slot = model.acquireSlot()!;
    slot.inputView(0, 256 * 4);
    await expect(slot.run([[1, 256, 1]])).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining("'input'") });
    await expect(slot.run([[1, 255]])).rejects.toMatchObject({ code: 'ENGINE_FAILURE', message: expect.stringContaining('input') });
    slot.release();
    await model.unload();
    expect(model.acquireSlot()).toBeUndefined();
    await expect(slot.run([[1, 256]])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('reports engine info', () => {
    const info = engineInfo();
    expect(info.ortVersion).toBe('1.29.0');
    expect(info.availableProviders).toContain('CPUExecutionProvider');
  });
});

describe('unload', () => {
  it('detaches slot memory so JS cannot touch freed buffers', async () => {
    const model = await loadModel(await mlpModel(tmp.dir));
    const slot = model.acquireSlot()!;
    const view = slot.inputView(0, 1024);
    expect(view.byteLength).toBeGreaterThanOrEqual(1024);
    slot.release();
    await model.unload();
    expect(view.byteLength).toBe(0);
    writeFileSync(join(tmp.dir, 'noop'), '');
  });
});
