{{- /*
Trimmed stand-in for Envoy Gateway's gateway-helm chart, vendored by the csghub test chart under the
alias "envoy" (condition envoy.enabled), as the real csghub chart does from 1.16.0. Objects carry the
csghub test chart's label set so `-l app.kubernetes.io/instance=<release>` finds them too.
*/ -}}
{{- define "eg.selectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/name: csghub
app.kubernetes.io/service: envoy-gateway
control-plane: envoy-gateway
{{- end -}}

{{- define "eg.labels" -}}
{{ include "eg.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "gateway-helm-%s" .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}
