/**
 * The Iris model server. In the container: `node serve.mjs serve`; from the repository:
 * `node --import tsx containers/models/iris/serve.ts serve`.
 */
import { runModelServer } from '../toolkit';
import { irisHandlers } from './handlers';

await runModelServer(irisHandlers);
