import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  compareInstanceTypes,
  INSTANCE_CATALOG,
  type InstanceSpec,
  isFargateType,
} from '../src/job/instances';
import type { AwsvpcConfiguration } from '../src/contract/deployment';
import { acknowledge, acknowledgeWildcards } from './nag';

export interface TransformComputeProps {
  /** VPC to run tasks in. @default a new VPC: public subnets in two AZs, no NAT gateway, an S3 gateway endpoint */
  readonly vpc?: ec2.IVpc;
  /** Subnets for tasks and EC2 instances. @default the public subnets of a new VPC; private-with-egress (else public) subnets of an imported one */
  readonly subnets?: ec2.SubnetSelection;
  /** ml.* instance types backed by EC2 capacity (GPU, Neuron, and CPU sizes Fargate cannot match). */
  readonly ec2InstanceTypes: readonly string[];
  /** Upper bound of each capacity provider's Auto Scaling group. */
  readonly maxInstancesPerType: number;
  /** Root volume of EC2 instances (container images, model artifacts, scratch). */
  readonly ec2RootVolumeGiB: number;
  /** Bucket for VPC flow logs (only when the VPC is created here). */
  readonly flowLogBucket: s3.IBucket;
  /** The log groups container instances may write to: the tasks' (ECS grants `logs:*` writes on every group otherwise). */
  readonly logGroups: readonly logs.ILogGroup[];
}

/**
 * Where tasks run: an ECS cluster (Container Insights on) with the Fargate capacity providers, and
 * one EC2 Auto Scaling capacity provider per enabled instance type. Every Auto Scaling group starts
 * at zero instances and ECS managed scaling grows it when a task asks for that capacity, so an idle
 * deployment runs no instance. Tasks are always started with a capacity provider strategy, never a
 * launch type, which is what lets a group at zero scale up.
 */
export class TransformCompute extends Construct {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.Cluster;
  readonly taskSecurityGroup: ec2.SecurityGroup;
  /** EC2 instance type (e.g. `g5.xlarge`) → its capacity provider. */
  readonly ec2CapacityProviders: ReadonlyMap<string, ecs.AsgCapacityProvider>;
  readonly fargateNetwork: AwsvpcConfiguration;
  readonly ec2Network: AwsvpcConfiguration;

  constructor(scope: Construct, id: string, props: TransformComputeProps) {
    super(scope, id);
    const createdVpc = !props.vpc;
    this.vpc =
      props.vpc ??
      new ec2.Vpc(this, 'Vpc', {
        maxAzs: 2,
        // No NAT gateway: it is billed by the hour whether jobs run or not. Tasks reach ECR and
        // CloudWatch through public IPs and S3 through the gateway endpoint (free).
        natGateways: 0,
        // The default security group would allow all traffic between its members and out; nothing
        // uses it, so its rules are removed (CIS AWS Foundations 5.4).
        restrictDefaultSecurityGroup: true,
        subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 20 }],
        gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
        flowLogs: {
          // Rejected traffic only: enough to diagnose a blocked task, and S3 delivery costs nothing idle.
          rejected: {
            destination: ec2.FlowLogDestination.toS3(props.flowLogBucket, 'vpc-flow-logs/'),
            trafficType: ec2.FlowLogTrafficType.REJECT,
          },
        },
      });
    const selection =
      props.subnets ??
      (createdVpc
        ? { subnetType: ec2.SubnetType.PUBLIC }
        : this.vpc.privateSubnets.length > 0
          ? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }
          : { subnetType: ec2.SubnetType.PUBLIC });
    const subnets = this.vpc.selectSubnets(selection);

    this.taskSecurityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: this.vpc,
      description:
        'Batch transform tasks and instances: no inbound traffic, outbound to AWS APIs and registries',
      allowAllOutbound: true,
    });

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      enableFargateCapacityProviders: true,
    });

    const network = (publicIp: boolean): AwsvpcConfiguration => ({
      Subnets: subnets.subnetIds,
      SecurityGroups: [this.taskSecurityGroup.securityGroupId],
      AssignPublicIp: publicIp ? 'ENABLED' : 'DISABLED',
    });
    // Fargate tasks in public subnets need a public IP to pull images. EC2 tasks in awsvpc mode cannot
    // have one (ECS rejects AssignPublicIp for them); they reach S3 through the gateway endpoint and
    // their images are pulled by the instance, which has a public IP.
    this.fargateNetwork = network(subnets.hasPublic);
    this.ec2Network = network(false);

    const providers = new Map<string, ecs.AsgCapacityProvider>();
    for (const mlType of [...new Set(props.ec2InstanceTypes)].sort(compareInstanceTypes)) {
      const spec = ec2Spec(mlType);
      const name = spec.ec2InstanceType.replace(/[^a-zA-Z0-9]/g, '');
      // An explicit launch template (not left to the generateLaunchTemplateInsteadOfLaunchConfig flag):
      // accounts created since 2024 cannot use launch configurations, whatever the embedding app's flags.
      const instanceRole = new InstanceRole(this, `InstanceRole${name}`, {
        logGroups: props.logGroups,
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        description: `ECS container instances (${spec.ec2InstanceType}) of the batch transform cluster`,
      });
      const userData = ec2.UserData.forLinux();
      // awsvpc tasks must not reach the instance metadata service (and with it the instance role).
      userData.addCommands('echo ECS_AWSVPC_BLOCK_IMDS=true >> /etc/ecs/ecs.config');
      const launchTemplate = new ec2.LaunchTemplate(this, `LaunchTemplate${name}`, {
        instanceType: new ec2.InstanceType(spec.ec2InstanceType),
        machineImage: ecs.EcsOptimizedImage.amazonLinux2023(hardwareType(spec)),
        userData,
        role: instanceRole,
        securityGroup: this.taskSecurityGroup,
        associatePublicIpAddress: subnets.hasPublic,
        requireImdsv2: true,
        blockDevices: [
          {
            deviceName: '/dev/xvda',
            volume: ec2.BlockDeviceVolume.ebs(props.ec2RootVolumeGiB, {
              encrypted: true,
              volumeType: ec2.EbsDeviceVolumeType.GP3,
              deleteOnTermination: true,
            }),
          },
        ],
      });
      const group = new autoscaling.AutoScalingGroup(this, `Instances${name}`, {
        vpc: this.vpc,
        vpcSubnets: selection,
        launchTemplate,
        minCapacity: 0,
        maxCapacity: props.maxInstancesPerType,
      });
      acknowledge(
        group,
        'AwsSolutions-AS3',
        'Scaling is driven by ECS managed scaling from zero for each job; its activity is in the capacity provider and the Auto Scaling activity history, and a notification topic would have no subscriber.',
      );
      const provider = new ecs.AsgCapacityProvider(this, `Capacity${name}`, {
        autoScalingGroup: group,
        enableManagedScaling: true,
        // Instances running a partition's task are never scaled in under it.
        enableManagedTerminationProtection: true,
        targetCapacityPercent: 100,
        machineImageType: ecs.MachineImageType.AMAZON_LINUX_2,
      });
      this.cluster.addAsgCapacityProvider(provider);
      acknowledgeWildcards(instanceRole, [
        {
          action: 'ecs:Submit*',
          reason:
            'The ECS agent on the instance reports container and task state changes (ecs:Submit*), as the ECS-optimized AMI expects; added by the cluster for its capacity, on this cluster only.',
        },
        {
          resource: '*',
          reason:
            'ECS agent polling and endpoint discovery (ecs:Poll, ecs:StartTelemetrySession, limited to this cluster by condition; ecs:DiscoverPollEndpoint) and ecr:GetAuthorizationToken have no resource-level permissions.',
        },
      ]);
      providers.set(spec.ec2InstanceType, provider);
    }
    this.ec2CapacityProviders = providers;
  }
}

/**
 * The role of ECS container instances. The cluster grants every instance role `logs:CreateLogStream`
 * and `logs:PutLogEvents` on every log group (`*`), for tasks without an execution role; ours have
 * one, and the agent writes their logs with it. Here those two actions are kept for the deployment's
 * own log groups only, whoever adds them.
 */
class InstanceRole extends iam.Role {
  readonly #logGroups: readonly logs.ILogGroup[];

  constructor(scope: Construct, id: string, props: iam.RoleProps & { logGroups: readonly logs.ILogGroup[] }) {
    const { logGroups, ...roleProps } = props;
    super(scope, id, roleProps);
    this.#logGroups = logGroups;
  }

  override addToPrincipalPolicy(statement: iam.PolicyStatement): iam.AddToPrincipalPolicyResult {
    const writes = statement.actions.filter((a) => LOG_WRITES.includes(a));
    if (writes.length === 0 || !statement.resources.includes('*') || statement.effect !== iam.Effect.ALLOW)
      return super.addToPrincipalPolicy(statement);
    const rest = statement.actions.filter((a) => !LOG_WRITES.includes(a));
    if (rest.length > 0) super.addToPrincipalPolicy(statement.copy({ actions: rest }));
    return super.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: writes,
        // A log group's ARN ends in `:*`, which covers its streams.
        resources: this.#logGroups.map((g) => g.logGroupArn),
      }),
    );
  }
}

/** What the cluster grants instance roles on every log group. */
const LOG_WRITES = ['logs:CreateLogStream', 'logs:PutLogEvents'];

/** The catalog entry of an ml.* type that needs EC2 capacity; synth fails with what to change otherwise. */
export function ec2Spec(mlType: string): InstanceSpec {
  const spec = INSTANCE_CATALOG[mlType];
  if (!spec) {
    throw new Error(
      `ec2InstanceTypes: "${mlType}" is not an instance type of the catalog (src/job/instances.ts); use an ml.* name such as ml.g5.xlarge`,
    );
  }
  if (isFargateType(mlType)) {
    throw new Error(
      `ec2InstanceTypes: "${mlType}" fits Fargate and always runs there; remove it (only GPU, Neuron and sizes Fargate cannot match need EC2 capacity)`,
    );
  }
  return spec;
}

function hardwareType(spec: InstanceSpec): ecs.AmiHardwareType {
  if (spec.gpus > 0) return ecs.AmiHardwareType.GPU;
  if (spec.neuronDevices > 0) return ecs.AmiHardwareType.NEURON;
  return ecs.AmiHardwareType.STANDARD;
}
