{{- /*
csghub.app: Deployment + ClusterIP Service <release>-<service> for one stateless component.
dict keys: ctx, service, values (the component's values: image, replicas, environments),
port, env (rendered env list, optional), podSpecExtra (rendered pod spec fields, optional).
*/ -}}
{{- define "csghub.app" -}}
{{- $ctx := .ctx -}}
{{- $labels := dict "ctx" $ctx "service" .service -}}
{{- $name := include "csghub.name" $labels -}}
{{- $values := .values | default dict -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "csghub.labels" $labels | nindent 4 }}
spec:
  replicas: {{ $values.replicas | default 1 }}
  selector:
    matchLabels:
      {{- include "csghub.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "csghub.labels" $labels | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: 10
      {{- with .podSpecExtra }}
      {{- . | nindent 6 }}
      {{- end }}
      containers:
        - name: {{ .service }}
          image: {{ include "csghub.image" (dict "ctx" $ctx "image" $values.image) }}
          imagePullPolicy: {{ $ctx.Values.global.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          {{- $env := trim (printf "%s\n%s" (.env | default "") (include "csghub.environments" ($values.environments | default dict))) }}
          {{- with $env }}
          env:
            {{- . | nindent 12 }}
          {{- end }}
          readinessProbe:
            tcpSocket:
              port: {{ .port }}
            periodSeconds: 10
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "csghub.labels" $labels | nindent 4 }}
spec:
  type: ClusterIP
  ports:
    - name: http
      port: {{ .port }}
      targetPort: {{ .port }}
      protocol: TCP
  selector:
    {{- include "csghub.selectorLabels" $labels | nindent 4 }}
{{- end -}}
