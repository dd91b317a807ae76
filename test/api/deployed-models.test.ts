/**
 * `batch-transform api --stack NAME`'s models: where they are kept and which images they may use come
 * from the stack's outputs (ModelsRoot, CreatedModelImages), as lib/stack.ts declares them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityOfArn } from '../../src/api/arns';
import { DEPLOYED_MODELS_UNKNOWN, deployedModelRegistry } from '../../src/api/deployed-transform-jobs';
import { ApiError } from '../../src/api/protocol';
import { Transformer } from '../../src/client/transformer';
import { FileStorage } from '../../src/storage/file';
import { makeTempDir, type TempDir } from '../support/tmp';

const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:BatchTransform-Lifecycle';
const identity = identityOfArn(STATE_MACHINE_ARN)!;
let dir: TempDir;

beforeAll(async () => {
  dir = await makeTempDir('deployed-models');
});
afterAll(async () => dir.remove());

const stack = (outputs: Record<string, string>) =>
  new Transformer({
    stackName: 'BatchTransform',
    storage: new FileStorage(),
    clients: {
      cloudFormation: {
        send: async () => ({
          Stacks: [
            {
              StackStatus: 'CREATE_COMPLETE',
              Outputs: Object.entries({ StateMachineArn: STATE_MACHINE_ARN, ...outputs }).map(
                ([OutputKey, OutputValue]) => ({ OutputKey, OutputValue }),
              ),
            },
          ],
        }),
      },
    },
  });

describe('the models of a deployed stack, from its outputs', () => {
  it('keeps a created model at ModelsRoot and refuses an image CreatedModelImages does not allow, on its field', async () => {
    const root = `${dir.uri}models/`;
    const models = await deployedModelRegistry(
      stack({ ModelsRoot: root, CreatedModelImages: JSON.stringify(['registry.example/team/*']) }),
      identity,
    );
    const refused = await models
      .create({ ModelName: 'other', Containers: [{ Image: 'registry.example/elsewhere/m:1' }] })
      .catch((e) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).message).toContain('Containers[0].Image');

    await models.create({ ModelName: 'mine', PrimaryContainer: { Image: 'registry.example/team/m:1' } });
    const stored = JSON.parse((await new FileStorage().readAll(`${root}mine.json`)).toString());
    expect(stored).toMatchObject({ ModelName: 'mine', Image: 'registry.example/team/m:1' });
  });

  it("allows the account's ECR repositories when the stack names no image patterns", async () => {
    const models = await deployedModelRegistry(stack({ ModelsRoot: `${dir.uri}default/` }), identity);
    await expect(
      models.create({
        ModelName: 'ecr',
        PrimaryContainer: { Image: '123456789012.dkr.ecr.us-west-2.amazonaws.com/m:1' },
      }),
    ).resolves.toEqual({ ModelArn: 'arn:aws:sagemaker:eu-west-1:123456789012:model/ecr' });
    const refused = await models
      .create({ ModelName: 'hub', PrimaryContainer: { Image: 'docker.io/library/python:3' } })
      .catch((e) => e);
    expect((refused as ApiError).message).toContain('PrimaryContainer.Image');
  });

  it('refuses CreateModel, saying how to fix it, when no models location is known', async () => {
    const models = await deployedModelRegistry(stack({}), identity);
    await expect(models.create({ ModelName: 'm', PrimaryContainer: { Image: 'x' } })).rejects.toThrow(
      DEPLOYED_MODELS_UNKNOWN,
    );
  });
});
