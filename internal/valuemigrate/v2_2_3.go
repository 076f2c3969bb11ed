package valuemigrate

// Chart 2.2.3 moved the basic auth of the Loki and Prometheus routes out of
// their `gateway` keys into `gatewayAuth`. loki.gateway.enabled stays (it is
// also the Loki subchart's own gateway switch, which it turned on with the
// route before) and is copied to loki.gatewayAuth.enabled, the route's switch
// now; prometheus.gateway was the plugin route's alone and moves.
func init() {
	Register("2.2.3",
		Rewrite{From: "loki.gateway.enabled", To: "loki.gatewayAuth.enabled", Keep: true},
		Rewrite{From: "loki.gateway.basicAuth.htpasswd", To: "loki.gatewayAuth.htpasswd"},
		Rewrite{From: "prometheus.gateway.enabled", To: "prometheus.gatewayAuth.enabled"},
		Rewrite{From: "prometheus.gateway.basicAuth.htpasswd", To: "prometheus.gatewayAuth.htpasswd"},
	)
}
