/** The CloudWatch namespace of every sidecar metric; the dashboard reads the same name. */
export const METRICS_NAMESPACE = 'BatchTransform';
