import { Aspects, type CfnResource, type IAspect, Validations } from 'aws-cdk-lib';
import { CfnPolicy, CfnRole } from 'aws-cdk-lib/aws-iam';
import { rules } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * cdk-nag acknowledgements with their reasons, kept next to the code they excuse.
 *
 * cdk-nag 3 matches an acknowledgement by the exact finding id, and an IAM5 (wildcard) finding's id
 * contains the flattened resource, e.g. `AwsSolutions-IAM5[Resource::<DataBucketE3889A50.Arn>/input/*]`,
 * which is only known once the policy is complete. So wildcards are acknowledged by pattern: an
 * aspect runs cdk-nag's own IAM5 rule on every policy under a scope at synthesis and acknowledges
 * each finding that one of the scope's declared patterns explains. A finding no pattern explains
 * stays a violation, so a new wildcard cannot slip in unexplained.
 */

/** A wildcard that a policy may contain, and why. Matched against the finding (`Resource::…` or `Action::…`). */
export interface WildcardReason {
  readonly finding: RegExp;
  readonly reason: string;
}

export function acknowledgeWildcards(scope: IConstruct, reasons: readonly WildcardReason[]): void {
  Aspects.of(scope).add(new WildcardAcknowledger(reasons));
}

/** Acknowledges one rule on a construct (and everything under it). */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

class WildcardAcknowledger implements IAspect {
  constructor(private readonly reasons: readonly WildcardReason[]) {}

  visit(node: IConstruct): void {
    if (!(node instanceof CfnPolicy || node instanceof CfnRole)) return;
    const result = rules.iam.IAMNoWildcardPermissions(node as CfnResource);
    if (!Array.isArray(result)) return;
    for (const finding of result) {
      const match = this.reasons.find((r) => r.finding.test(finding));
      if (match)
        Validations.of(node).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason: match.reason });
    }
  }
}

/** Escapes text for use inside a RegExp. */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
