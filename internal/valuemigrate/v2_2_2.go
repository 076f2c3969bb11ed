package valuemigrate

// Chart 2.2.2 (runner subchart 2.2.3) regrouped the runner's values, with no
// fallback to the old keys: runner.* settings of the runner itself moved under
// runner.runner, the Space settings under runner.space, and the model keys were
// renamed.
//
// model.deployTimeout is carried as it is: every chart that read it (1.x to
// 2.2.1) rendered it unchanged into STARHUB_SERVER_MODEL_DEPLOY_TIMEOUT_IN_MINUTES,
// so it always was minutes (the "(in seconds)" comment in values.yaml was
// wrong; both defaults are 60). Converting it from seconds would cut the
// operator's timeout 60-fold.
func init() {
	moves := [][2]string{
		{"runner.region", "runner.runner.region"},
		{"runner.interval", "runner.runner.interval"},
		{"runner.namespace", "runner.runner.namespace"},
		{"runner.mergingNamespace", "runner.runner.mergingNamespace"},
		{"runner.applicationEndpoint", "runner.runner.applicationEndpoint"},
		{"runner.networkInterface", "runner.runner.networkInterface"},
		{"runner.storageClassName", "runner.runner.storageClassName"},
		{"runner.extraBuildArgs", "runner.runner.imageBuilderKanikoArgs"},
		{"runner.usePublicDomain", "runner.space.usePublicDomain"},
		{"runner.pipIndexUrl", "runner.space.pipIndexUrl"},
		{"runner.gpuModelLabel", "runner.space.gpuModelLabel"},
		{"runner.model.deployTimeout", "runner.model.deployTimeoutInMin"},
		{"runner.model.registry", "runner.model.dockerRegBase"},
	}
	var rs []Rewrite
	for _, m := range moves {
		rs = append(rs, Rewrite{From: m[0], To: m[1]})
	}
	Register("2.2.2", rs...)
}
