package valuemigrate

// Chart 2.2.0:
//   - the runner subchart's Knative autoscaler setting scaleToZeroGracePeriod
//     is now scaleToZeroPodRetentionPeriod (the chart renders it as Knative's
//     scale-to-zero-pod-retention-period).
//   - portal.docs no longer creates a Service for an external docs site
//     (domain: ExternalName; host+port: Service and Endpoints `<release>-docs`):
//     /docs is routed to an existing Service named by portal.docs.service (and
//     portal.docs.port). That Service must exist first, so nothing is carried.
func init() {
	const docs = "2.2.0 routes /docs only to an existing Service named by portal.docs.service (with portal.docs.port) and no longer creates one for a docs domain or host: create the Service (ExternalName for a domain) and set portal.docs.service"
	Register("2.2.0",
		Rewrite{From: "runner.knative.serving.autoscaler.scaleToZeroGracePeriod", To: "runner.knative.serving.autoscaler.scaleToZeroPodRetentionPeriod"},
		Rewrite{From: "portal.docs.domain", Note: docs},
		Rewrite{From: "portal.docs.host", Note: docs},
	)
}
