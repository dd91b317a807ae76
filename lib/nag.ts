import { Aspects, type CfnResource, type IAspect, Stack, Validations } from 'aws-cdk-lib';
import { CfnPolicy, CfnRole } from 'aws-cdk-lib/aws-iam';
import { rules } from 'cdk-nag';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference';
import type { IConstruct } from 'constructs';

/**
 * cdk-nag acknowledgements with their reasons, kept next to the code they excuse.
 *
 * cdk-nag 3 matches an acknowledgement by the exact finding id, and an IAM5 (wildcard) finding's id
 * contains the flattened resource, e.g. `AwsSolutions-IAM5[Resource::<DataBucketE3889A50.Arn>/input/*]`,
 * which is only known once the policy is complete. So a wildcard is acknowledged by naming the exact
 * resource (or action) that was granted: an aspect runs cdk-nag's own IAM5 rule on every policy
 * under a scope at synthesis, flattens each declared resource the way that rule does, and
 * acknowledges a finding only when it is exactly one of them. A finding nobody declared, even
 * `Resource::*`, stays a violation, so a new wildcard cannot slip in unexplained.
 */

/** A wildcard a policy may contain, and why: exactly one resource or one action. */
export type WildcardReason =
  | {
      /** The resource as granted: an ARN (tokens allowed) with a wildcard, or `*`. */
      readonly resource: string;
      readonly reason: string;
    }
  | {
      /** An action with a wildcard, e.g. `ecs:Submit*`. */
      readonly action: string;
      readonly reason: string;
    };

/** Acknowledges exactly these wildcards in the policies under `scope`; adds to what was declared there before. */
export function acknowledgeWildcards(scope: IConstruct, reasons: readonly WildcardReason[]): void {
  let acknowledger = ACKNOWLEDGERS.get(scope);
  if (!acknowledger) {
    acknowledger = new WildcardAcknowledger();
    ACKNOWLEDGERS.set(scope, acknowledger);
    Aspects.of(scope).add(acknowledger);
  }
  acknowledger.reasons.push(...reasons);
}

/** Acknowledges one rule on a construct (and everything under it). */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

const ACKNOWLEDGERS = new WeakMap<IConstruct, WildcardAcknowledger>();

class WildcardAcknowledger implements IAspect {
  readonly reasons: WildcardReason[] = [];

  visit(node: IConstruct): void {
    if (!(node instanceof CfnPolicy || node instanceof CfnRole)) return;
    const result = rules.iam.IAMNoWildcardPermissions(node as CfnResource);
    if (!Array.isArray(result)) return;
    const stack = Stack.of(node);
    const declared = new Map(
      this.reasons.map((r) => [
        'action' in r ? `Action::${r.action}` : `Resource::${flattenCfnReference(stack.resolve(r.resource))}`,
        r.reason,
      ]),
    );
    for (const finding of result) {
      const reason = declared.get(finding);
      if (reason) Validations.of(node).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    }
  }
}
