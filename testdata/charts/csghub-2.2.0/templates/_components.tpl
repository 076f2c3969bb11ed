{{- /*
csghub.stateful: StatefulSet (1 replica) + headless Service <release>-<service> for one built-in
backing component (MinIO, Redis, Gitaly), named, labelled and ported as the real chart's
templates/<component>/{statefulset,service}.yaml. No volumes: nothing runs under kwok.
dict keys: ctx, service, image (repository/tag), port, secret (Secret name for envFrom, optional).
*/ -}}
{{- define "csghub.stateful" -}}
{{- $ctx := .ctx -}}
{{- $labels := dict "ctx" $ctx "service" .service -}}
{{- $name := include "csghub.name" $labels -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "csghub.labels" $labels | nindent 4 }}
spec:
  type: ClusterIP
  clusterIP: None
  ports:
    - name: {{ .service }}
      port: {{ .port }}
      targetPort: {{ .port }}
      protocol: TCP
  selector:
    {{- include "csghub.selectorLabels" $labels | nindent 4 }}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "csghub.labels" $labels | nindent 4 }}
spec:
  replicas: 1
  serviceName: {{ $name }}
  selector:
    matchLabels:
      {{- include "csghub.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "csghub.labels" $labels | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: {{ .service }}
          image: {{ include "csghub.image" (dict "ctx" $ctx "image" .image) }}
          imagePullPolicy: {{ $ctx.Values.global.image.pullPolicy }}
          ports:
            - name: {{ .service }}
              containerPort: {{ .port }}
              protocol: TCP
          {{- with .secret }}
          envFrom:
            - secretRef:
                name: {{ . }}
          {{- end }}
          readinessProbe:
            tcpSocket:
              port: {{ .port }}
            periodSeconds: 5
{{- end -}}

{{- /*
csghub.secretValue: the value of key in the release's existing Secret (kept across upgrades, as the
real chart's lookup), else .default. dict keys: ctx, name, key, default.
*/ -}}
{{- define "csghub.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name | default dict -}}
{{- dig "data" .key "" $existing | b64dec | default .default -}}
{{- end -}}

{{- /*
csghub.casdoor.origin: Casdoor's external endpoint, which its app.conf names as `origin` and Casdoor
serves as the OIDC issuer: http(s)://casdoor.<base domain>. From 1.16 the base domain is
global.gateway.external.domain without its first label when it has three or more (unless
global.gateway.external.useTop); 1.15 used global.ingress.domain as it is.
*/ -}}
{{- define "csghub.casdoor.origin" -}}
{{- $f := include "csghub.features" . | fromYaml -}}
{{- if $f.gateway -}}
{{- $gw := .Values.global.gateway | default dict -}}
{{- $domain := dig "external" "domain" "csghub.example.com" $gw -}}
{{- if and (ge (len (splitList "." $domain)) 3) (not (dig "external" "useTop" false $gw)) -}}
{{- $domain = regexReplaceAll "^[^.]+\\." $domain "" -}}
{{- end -}}
{{- printf "%s://casdoor.%s" (ternary "https" "http" (dig "tls" "enabled" false $gw)) $domain -}}
{{- else -}}
{{- $in := .Values.global.ingress | default dict -}}
{{- printf "%s://casdoor.%s" (ternary "https" "http" (dig "tls" "enabled" false $in)) (dig "domain" "example.com" $in) -}}
{{- end -}}
{{- end -}}
