// The example models belong to local mode (src/local/example-models.ts); the CLI's verbs and the API
// server both start them from there.
export { exampleModelNames, exampleModelSource } from '../local/example-models';
