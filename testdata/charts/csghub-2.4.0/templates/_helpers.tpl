{{- /*
Test chart mirroring the CSGHub Helm chart (OpenCSGs/csghub-charts) for upgrade tests.
templates/ is byte-identical in every testdata/charts/csghub-<version>/ folder (see ../README.md and
../sync.sh); behaviour that changed between the real releases is keyed on .Chart.Version here.
*/ -}}

{{- /*
csghub.features: what this chart version renders, as YAML (use with fromYaml).
  ingressNginx         1.15.x  ingress-nginx controller + Ingress (replaced by Envoy Gateway in 1.16.0)
  gateway              >=1.16  Gateway API objects (need the gateway-helm subchart's CRDs)
  runnerStackUnmanaged 1.16.x  Knative/Argo/LWS CRDs + LWS webhooks applied by a kubectl Job (not Helm)
  runnerStackOwned     >=1.17  the same CRDs/webhooks are chart templates (adoption needed on upgrade)
  knativeNsUnmanaged   <2.0    the knative-serving Namespace is created outside Helm ownership
  knativeNsOwned       >=2.0   the knative-serving Namespace is a chart template (adoption needed)
  knativeWorkloads     >=1.16  activator/autoscaler/controller/webhook Deployments in knative-serving
                               (kubectl Job in 1.16, Knative operator later: never Helm-owned)
  mongo                <2.0    dataflow task logs in MongoDB (<release>-mongo)
  dataflowLogsPostgres 2.0-2.1 dataflow task logs in PostgreSQL (csghub_dataflow_logs)
  dataflowLogsFiles    >=2.2   dataflow task logs in files inside its pod (csghub_dataflow_logs dropped)
  dataflowDeployment   >=2.2   dataflow is a Deployment with PVC <release>-dataflow (a StatefulSet before:
                               its PVC data-<release>-dataflow-0 is orphaned)
  dataflowMigrationsHook >=2.2 pre-upgrade hook Job <release>-dataflow-migrations: snapshots the dataflow
                               tables to *_20260608 and TRUNCATEs them (once, ledger _migrations)
  agentichub           >=2.1   <release>-agentichub on database csghub_agenticflow (agentichub.enabled)
  runnerValuesNested   >=2.2.3 runner values restructured: runner.runner.region, runner.space.*,
                               runner.model.deployTimeoutInMin / dockerRegBase (old keys ignored)
  envoyProxyRenamed    >=2.2.3 EnvoyProxy <release>-envoy-proxy (was <release>-envoy-proxy-custom)
  initJobsRenamed      >=2.4   init Jobs <release>-casdoor-migrate, <release>-server-migrate
  gatedDbInit          >=2.1   the db-init hook pod carries the test-harness scheduling gate (the hook
                               completes only after the harness created the databases; test-only)
  brokenServer         2.0.1   <release>-server pods can never be scheduled, so never become Ready
  knativeOperator      >=1.17  the KnativeServing CRD (knative-operator subchart) + KnativeServing knative-serving
  knativeServingHook   1.17.x  ... rendered as a post-install/post-upgrade hook (never Helm-owned)
                               (>=2.0: hook or ordinary by a lookup of its CRD, see knative-serving.yaml)
  runnerAutoConfigure  <1.17   the install-time auto-configure Job creates Secret <release>-docker-credential
                               in the spaces namespace outside Helm
  runnerCredentialLookup >=1.17 the chart renders that Secret itself, only when it does not exist (lookup)
*/ -}}
{{- define "csghub.features" -}}
{{- $v := .Chart.Version -}}
ingressNginx: {{ semverCompare "<1.16.0-0" $v }}
gateway: {{ semverCompare ">=1.16.0-0" $v }}
runnerStackUnmanaged: {{ semverCompare ">=1.16.0-0, <1.17.0-0" $v }}
runnerStackOwned: {{ semverCompare ">=1.17.0-0" $v }}
knativeNsUnmanaged: {{ semverCompare ">=1.16.0-0, <2.0.0-0" $v }}
knativeNsOwned: {{ semverCompare ">=2.0.0-0" $v }}
knativeWorkloads: {{ semverCompare ">=1.16.0-0" $v }}
mongo: {{ semverCompare "<2.0.0-0" $v }}
dataflowLogsPostgres: {{ semverCompare ">=2.0.0-0, <2.2.0-0" $v }}
dataflowLogsFiles: {{ semverCompare ">=2.2.0-0" $v }}
dataflowDeployment: {{ semverCompare ">=2.2.0-0" $v }}
dataflowMigrationsHook: {{ semverCompare ">=2.2.0-0" $v }}
agentichub: {{ semverCompare ">=2.1.0-0" $v }}
runnerValuesNested: {{ semverCompare ">=2.2.3-0" $v }}
envoyProxyRenamed: {{ semverCompare ">=2.2.3-0" $v }}
initJobsRenamed: {{ semverCompare ">=2.4.0-0" $v }}
gatedDbInit: {{ semverCompare ">=2.1.0-0" $v }}
brokenServer: {{ eq $v "2.0.1" }}
knativeOperator: {{ semverCompare ">=1.17.0-0" $v }}
knativeServingHook: {{ semverCompare ">=1.17.0-0, <2.0.0-0" $v }}
runnerAutoConfigure: {{ semverCompare "<1.17.0-0" $v }}
runnerCredentialLookup: {{ semverCompare ">=1.17.0-0" $v }}
{{- end -}}

{{- /* <release>-<component>, as the real chart's common.names.custom */ -}}
{{- define "csghub.name" -}}
{{- printf "%s-%s" .ctx.Release.Name .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Selector labels (immutable): the real chart selects on instance + name + service. */ -}}
{{- define "csghub.selectorLabels" -}}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/service: {{ .service }}
{{- end -}}

{{- /* Labels on every object and pod template; usage: include "csghub.labels" (dict "ctx" . "service" "server") */ -}}
{{- define "csghub.labels" -}}
{{ include "csghub.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- /* <repository>:<tag>; tag defaults to global.image.tag (the chart's appVersion) */ -}}
{{- define "csghub.image" -}}
{{- $img := .image -}}
{{- printf "%s:%s" $img.repository (toString ($img.tag | default .ctx.Values.global.image.tag)) -}}
{{- end -}}

{{- /*
Database connection used by the application pods: the built-in PostgreSQL when
global.postgresql.enabled, else global.postgresql.external.*. Returns YAML (fromYaml).
The password is never copied: pods read it from passwordSecret/POSTGRES_PASSWORD.
*/ -}}
{{- define "csghub.postgresql.config" -}}
{{- if .Values.global.postgresql.enabled -}}
host: {{ include "csghub.name" (dict "ctx" . "service" "postgresql") }}
port: 5432
user: csghub
sslmode: disable
timezone: Etc/UTC
passwordSecret: {{ include "csghub.name" (dict "ctx" . "service" "postgresql") }}
{{- else -}}
{{- $ext := .Values.global.postgresql.external | default dict -}}
{{- if not $ext.host -}}
{{- fail "global.postgresql.enabled=false requires global.postgresql.external.host" -}}
{{- end -}}
host: {{ $ext.host | quote }}
port: {{ $ext.port | default 5432 }}
user: {{ $ext.user | default "csghub" | quote }}
sslmode: {{ $ext.sslmode | default "prefer" | quote }}
timezone: {{ $ext.timezone | default "Etc/UTC" | quote }}
passwordSecret: {{ include "csghub.name" (dict "ctx" . "service" "postgresql-external") }}
{{- end -}}
{{- end -}}

{{- /* env entries connecting a pod to database .database */ -}}
{{- define "csghub.postgresql.env" -}}
{{- $db := include "csghub.postgresql.config" .ctx | fromYaml -}}
- name: POSTGRES_HOST
  value: {{ $db.host | quote }}
- name: POSTGRES_PORT
  value: {{ $db.port | quote }}
- name: POSTGRES_USER
  value: {{ $db.user | quote }}
- name: POSTGRES_DB
  value: {{ .database | quote }}
- name: POSTGRES_SSLMODE
  value: {{ $db.sslmode | quote }}
- name: POSTGRES_TIMEZONE
  value: {{ $db.timezone | quote }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $db.passwordSecret }}
      key: POSTGRES_PASSWORD
{{- end -}}

{{- /* env entries from a free-form map (the real chart's <component>.environments) */ -}}
{{- define "csghub.environments" -}}
{{- range $key, $value := . }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- /* The external domain: global.ingress.domain up to 1.15, global.gateway.external.domain from 1.16 */ -}}
{{- define "csghub.domain" -}}
{{- $f := include "csghub.features" . | fromYaml -}}
{{- if $f.gateway -}}
{{- dig "gateway" "external" "domain" "csghub.example.com" .Values.global -}}
{{- else -}}
{{- printf "%s.%s" .Release.Name (dig "ingress" "domain" "example.com" .Values.global) -}}
{{- end -}}
{{- end -}}
