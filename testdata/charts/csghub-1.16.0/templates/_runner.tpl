{{- /*
Knative Serving / Argo Workflows / LeaderWorkerSet objects (the real runner subchart's stack), trimmed.
Each helper takes dict "ctx" . "owned" <bool>: owned=true renders them as this chart's objects (1.17+:
Helm labels), owned=false as the real 1.16 kubectl-apply Job / Knative operator left them (no Helm
labels or annotations). The same text is used both ways, so only ownership differs.
*/ -}}

{{- /* upstream labels, overridden by this chart's labels when the object is Helm-owned */ -}}
{{- define "csghub.runner.labels" -}}
{{- $labels := deepCopy (.labels | default dict) -}}
{{- if .owned -}}
{{- $labels = merge (include "csghub.labels" (dict "ctx" .ctx "service" .service) | fromYaml) $labels -}}
{{- end -}}
{{- toYaml $labels -}}
{{- end -}}

{{- define "csghub.runner.crd" -}}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ .plural }}.{{ .group }}
  labels:
    {{- include "csghub.runner.labels" (dict "ctx" .ctx "owned" .owned "service" "runner" "labels" .labels) | nindent 4 }}
  {{- if and .owned .keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
spec:
  group: {{ .group }}
  scope: {{ .scope | default "Namespaced" }}
  names:
    kind: {{ .kind }}
    listKind: {{ .kind }}List
    plural: {{ .plural }}
    singular: {{ lower .kind }}
    {{- with .shortNames }}
    shortNames: {{ toJson . }}
    {{- end }}
    {{- with .categories }}
    categories: {{ toJson . }}
    {{- end }}
  versions:
    - name: {{ .version }}
      served: true
      storage: true
      subresources:
        status: {}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion:
              type: string
            kind:
              type: string
            metadata:
              type: object
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
{{- end -}}

{{- define "csghub.runner.crds" -}}
{{- $ctx := .ctx -}}
{{- $owned := .owned -}}
{{- $knative := dict "app.kubernetes.io/name" "knative-serving" "app.kubernetes.io/version" "1.21.1" "knative.dev/crd-install" "true" -}}
{{- $argo := dict "app.kubernetes.io/part-of" "argo" -}}
{{- $lws := dict "app.kubernetes.io/part-of" "lws" -}}
{{- $crds := list
  (dict "group" "serving.knative.dev" "kind" "Service" "plural" "services" "version" "v1" "shortNames" (list "kservice" "ksvc") "categories" (list "all" "knative" "serving") "labels" $knative "keep" true)
  (dict "group" "serving.knative.dev" "kind" "Configuration" "plural" "configurations" "version" "v1" "shortNames" (list "config" "cfg") "categories" (list "all" "knative" "serving") "labels" $knative "keep" true)
  (dict "group" "serving.knative.dev" "kind" "Revision" "plural" "revisions" "version" "v1" "shortNames" (list "rev") "categories" (list "all" "knative" "serving") "labels" $knative "keep" true)
  (dict "group" "serving.knative.dev" "kind" "Route" "plural" "routes" "version" "v1" "shortNames" (list "rt") "categories" (list "all" "knative" "serving") "labels" $knative "keep" true)
  (dict "group" "argoproj.io" "kind" "Workflow" "plural" "workflows" "version" "v1alpha1" "shortNames" (list "wf") "labels" $argo "keep" true)
  (dict "group" "argoproj.io" "kind" "WorkflowTemplate" "plural" "workflowtemplates" "version" "v1alpha1" "shortNames" (list "wftmpl") "labels" $argo "keep" true)
  (dict "group" "leaderworkerset.x-k8s.io" "kind" "LeaderWorkerSet" "plural" "leaderworkersets" "version" "v1" "shortNames" (list "lws") "labels" $lws "keep" false)
-}}
{{- range $i, $crd := $crds }}
{{- if $i }}
---
{{- end }}
{{ include "csghub.runner.crd" (merge (dict "ctx" $ctx "owned" $owned) $crd) }}
{{- end }}
{{- end -}}

{{- /*
LWS admission webhooks (names as upstream / the real chart). failurePolicy Ignore and rules that only
match leaderworkersets, so they can never block API calls in a cluster where nothing serves them.
The webhook Service lives in lws-system in 1.16 (kubectl-applied upstream manifests) and in the
release namespace from 1.17 (lws subchart).
*/ -}}
{{- define "csghub.runner.webhooks" -}}
{{- $ctx := .ctx -}}
{{- $ns := ternary $ctx.Release.Namespace "lws-system" .owned -}}
{{- range $i, $kind := list "Mutating" "Validating" }}
{{- if $i }}
---
{{- end }}
apiVersion: admissionregistration.k8s.io/v1
kind: {{ $kind }}WebhookConfiguration
metadata:
  name: lws-{{ lower $kind }}-webhook-configuration
  labels:
    {{- include "csghub.runner.labels" (dict "ctx" $ctx "owned" $.owned "service" "lws" "labels" (dict "app.kubernetes.io/part-of" "lws")) | nindent 4 }}
webhooks:
  - name: {{ ternary "mleaderworkerset.kb.io" "vleaderworkerset.kb.io" (eq $kind "Mutating") }}
    admissionReviewVersions: ["v1"]
    sideEffects: None
    failurePolicy: Ignore
    timeoutSeconds: 5
    clientConfig:
      service:
        name: lws-webhook-service
        namespace: {{ $ns }}
        path: /{{ ternary "mutate" "validate" (eq $kind "Mutating") }}-leaderworkerset-x-k8s-io-v1-leaderworkerset
    rules:
      - apiGroups: ["leaderworkerset.x-k8s.io"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["leaderworkersets"]
{{- end }}
{{- end -}}

{{- define "csghub.knative.namespace" -}}
apiVersion: v1
kind: Namespace
metadata:
  name: knative-serving
  labels:
    {{- include "csghub.runner.labels" (dict "ctx" .ctx "owned" .owned "service" "knative-serving" "labels" (dict "app.kubernetes.io/name" "knative-serving" "kubernetes.io/metadata.name" "knative-serving")) | nindent 4 }}
  {{- if .owned }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
{{- end -}}

{{- /* Knative Serving control plane pods (1 replica each), never Helm-owned */ -}}
{{- define "csghub.knative.workloads" -}}
{{- range $i, $c := list "activator" "autoscaler" "controller" "webhook" }}
{{- if $i }}
---
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $c }}
  namespace: knative-serving
  labels:
    app.kubernetes.io/component: {{ $c }}
    app.kubernetes.io/name: knative-serving
    app.kubernetes.io/version: "1.21.1"
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {{ $c }}
  template:
    metadata:
      labels:
        app: {{ $c }}
        app.kubernetes.io/component: {{ $c }}
        app.kubernetes.io/name: knative-serving
        app.kubernetes.io/version: "1.21.1"
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: {{ $c }}
          image: opencsghq/knative-releases/knative.dev/serving/cmd/{{ $c }}:v1.21.1
{{- end }}
{{- end -}}

{{- /* The runner's spaces namespace: runner.namespace (runner.runner.namespace from 2.2.3), default "spaces" */ -}}
{{- define "csghub.spaces.namespace" -}}
{{- $f := include "csghub.features" . | fromYaml -}}
{{- $r := .Values.runner | default dict -}}
{{- if $f.runnerValuesNested -}}
{{- $r = $r.runner | default dict -}}
{{- end -}}
{{- $r.namespace | default "spaces" -}}
{{- end -}}

{{- /*
Secret <release>-docker-credential in the spaces namespace: the registry credentials the runner's
workloads pull with. owned: rendered by the chart (1.17+, kept on uninstall); else made by the
auto-configure Job (no Helm metadata).
*/ -}}
{{- define "csghub.runner.dockerCredential" -}}
{{- $ctx := .ctx -}}
{{- $registry := dig "image" "registry" "docker.io" ($ctx.Values.global | default dict) | default "docker.io" -}}
{{- $auth := dict "auths" (dict $registry (dict "username" "csghub" "password" "" "auth" ("csghub:" | b64enc))) -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "csghub.name" (dict "ctx" $ctx "service" "docker-credential") }}
  namespace: {{ include "csghub.spaces.namespace" $ctx }}
  labels:
    {{- include "csghub.runner.labels" (dict "ctx" $ctx "owned" .owned "service" "runner" "labels" (dict "app.kubernetes.io/component" "docker-credential")) | nindent 4 }}
  {{- if .owned }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: {{ toJson $auth | b64enc }}
{{- end -}}

{{- /* What this version leaves to the kubectl Job / post-install hook / operator (see unmanaged-resources.yaml) */ -}}
{{- define "csghub.unmanaged.manifests" -}}
{{- $f := include "csghub.features" . | fromYaml -}}
{{- $docs := list -}}
{{- if $f.runnerStackUnmanaged -}}
{{- $docs = append $docs (include "csghub.runner.crds" (dict "ctx" . "owned" false)) -}}
{{- $docs = append $docs (include "csghub.runner.webhooks" (dict "ctx" . "owned" false)) -}}
{{- end -}}
{{- if $f.knativeNsUnmanaged -}}
{{- $docs = append $docs (include "csghub.knative.namespace" (dict "ctx" . "owned" false)) -}}
{{- end -}}
{{- if $f.knativeWorkloads -}}
{{- $docs = append $docs (include "csghub.knative.workloads" .) -}}
{{- end -}}
{{- if and $f.runnerAutoConfigure (dig "enabled" true (.Values.runner | default dict)) -}}
{{- $docs = append $docs (include "csghub.runner.dockerCredential" (dict "ctx" . "owned" false)) -}}
{{- end -}}
{{- join "\n---\n" $docs -}}
{{- end -}}
