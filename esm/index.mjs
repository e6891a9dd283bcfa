// The ESM entry of `tensorwire` (package.json "exports" -> "import"). It re-exports the
// CommonJS build by name rather than being a second build, so `import` and `require` share
// one module instance: one addon load, one TensorwireError class for `instanceof`.
// test/package-entry.test.ts keeps this list equal to lib/index.ts's runtime exports.
import tensorwire from '../dist/lib/index.js';

export const {
  createTensorwire,
  OPTION_BOUNDS,
  HttpClient,
  StreamClient,
  streamUrl,
  startGrpcServer,
  DEFAULT_GRPC_PORT,
  datatypeOf,
  toFloat32,
  bytesTensorStrings,
  bytesTensorElements,
  TensorwireError,
  ERROR_CATALOGUE,
  isTensorwireError,
  loadModel,
  engineInfo,
  LoadedModel,
} = tensorwire;

export default tensorwire;
