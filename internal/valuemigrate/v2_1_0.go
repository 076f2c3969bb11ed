package valuemigrate

// Chart 2.1.0 replaced the agent (Langflow) settings with the Agentichub
// subchart: the server reads server.agenticflow.{host,token,...} instead of
// server.agent.langflow.{...} (same keys below).
//
// It also stopped turning off the runner's, Dataflow's and CSGShip's own
// envoy/reloader/prometheus subcharts with runner.envoy.enabled=false (and the
// like) and uses `tags.dependencies: false` instead. Those `enabled` keys are
// still the subcharts' conditions, and Helm lets a condition override tags, so
// an operator's value keeps deciding: they are kept, not moved (moving one to
// tags.dependencies would switch all those subcharts at once).
func init() {
	const kept = "still the subchart's condition, which Helm puts before tags.dependencies (2.1.0's default)"
	Register("2.1.0",
		Rewrite{From: "server.agent.langflow", To: "server.agenticflow"},
		Rewrite{From: "runner.envoy.enabled", Keep: true, Note: kept},
		Rewrite{From: "runner.reloader.enabled", Keep: true, Note: kept},
		Rewrite{From: "runner.prometheus.enabled", Keep: true, Note: kept},
		Rewrite{From: "dataflow.envoy.enabled", Keep: true, Note: kept},
		Rewrite{From: "dataflow.reloader.enabled", Keep: true, Note: kept},
		Rewrite{From: "csgship.envoy.enabled", Keep: true, Note: kept},
		Rewrite{From: "csgship.reloader.enabled", Keep: true, Note: kept},
	)
}
