{{- define "batch-worker.fullname" -}}
{{- printf "%s-batch-worker" .Release.Name | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "batch-worker.selectorLabels" -}}
app.kubernetes.io/name: batch-worker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
