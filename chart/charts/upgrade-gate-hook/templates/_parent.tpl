{{/*
Named templates for the parent chart: what its own pods need for the gate.
Each takes the parent's context (`.` in a template of the parent, `$` inside
a range or with) and finds this chart among the parent's subcharts, under
its name or an alias (the upgrade-gate/chart annotation of Chart.yaml).
With enabled false each renders nothing.

  annotations:  {{ include "upgrade-gate-hook.podAnnotations" . | nindent 8 }}
  env:          {{ include "upgrade-gate-hook.tokenEnv" . | nindent 12 }}
  volumeMounts: {{ include "upgrade-gate-hook.tokenVolumeMount" . | nindent 12 }}
  volumes:      {{ include "upgrade-gate-hook.tokenVolume" . | nindent 8 }}
  NetworkPolicy from.podSelector.matchLabels: {{ include "upgrade-gate-hook.hookPodLabels" . | nindent 14 }}
  NOTES.txt:    {{ include "upgrade-gate-hook.notes" . }}

And, so that the hook skips the pods an upgrade does not replace
(skipUnchangedPods), the pod template itself, rendered without its hash:

  annotation:   upgrade-gate/template-hash: {{ include "upgrade-gate-hook.templateHash" $text | quote }}
  a template:   {{ include "upgrade-gate-hook.templateConfigMap" (dict "context" . "template" $text "replicas" .Values.replicas) }}
*/}}

{{/* The key of this chart in .Subcharts, or "." when `.` is this chart itself. */}}
{{- define "upgrade-gate-hook.locate" -}}
{{- if eq (index (.Chart.Annotations | default dict) "upgrade-gate/chart" | default "") "dependency" }}.
{{- else }}
{{- $found := list }}
{{- range $key, $sub := .Subcharts | default dict }}
{{- if eq (index ($sub.Chart.Annotations | default dict) "upgrade-gate/chart" | default "") "dependency" }}
{{- $found = append $found $key }}
{{- end }}
{{- end }}
{{- if ne (len $found) 1 }}
{{- fail (printf "upgrade-gate-hook: the named templates for the parent chart take the parent's context (`.`, or `$` inside range and with) with exactly one upgrade-gate-hook dependency among its subcharts; found %d in chart %s" (len $found) .Chart.Name) }}
{{- end }}
{{- first $found }}
{{- end }}
{{- end }}

{{/* Renders template .name with this chart's own context, found from the parent's. */}}
{{- define "upgrade-gate-hook.forParent" -}}
{{- $key := include "upgrade-gate-hook.locate" .context }}
{{- $own := ternary .context (index (.context.Subcharts | default dict) $key) (eq $key ".") }}
{{- if $own.Values.enabled }}
{{- include .name $own }}
{{- end }}
{{- end }}

{{/*
Pod annotations: a checksum of the drain token's settings, so that the pods
restart (and read the new token) when drainToken changes. Without it, pods
keep the old token and refuse the next hook's fence: that upgrade fails at
once, safely, and the hook names the token that differs.
*/}}
{{- define "upgrade-gate-hook.podAnnotations" -}}
{{- include "upgrade-gate-hook.forParent" (dict "context" . "name" "upgrade-gate-hook.podAnnotationsOf") }}
{{- end }}

{{- define "upgrade-gate-hook.podAnnotationsOf" -}}
checksum/upgrade-gate-token: {{ include "upgrade-gate-hook.tokenChecksum" . }}
{{- end }}

{{/*
The app container's env entry naming the token file (the upgrade_gate
library reads $UPGRADE_GATE_TOKEN_FILE), with tokenVolumeMount and
tokenVolume. Without them the app has no token, refuses every fence (403),
and every upgrade fails at once, safely, the hook naming the missing token
(fence: false waits without fencing instead).
*/}}
{{- define "upgrade-gate-hook.tokenEnv" -}}
{{- include "upgrade-gate-hook.forParent" (dict "context" . "name" "upgrade-gate-hook.tokenEnvOf") }}
{{- end }}

{{- define "upgrade-gate-hook.tokenEnvOf" -}}
- name: UPGRADE_GATE_TOKEN_FILE
  value: {{ include "upgrade-gate-hook.tokenDir" . }}/token
{{- end }}

{{- define "upgrade-gate-hook.tokenVolumeMount" -}}
{{- include "upgrade-gate-hook.forParent" (dict "context" . "name" "upgrade-gate-hook.tokenVolumeMountOf") }}
{{- end }}

{{- define "upgrade-gate-hook.tokenVolumeMountOf" -}}
- name: upgrade-gate-token
  mountPath: {{ include "upgrade-gate-hook.tokenDir" . }}
  readOnly: true
{{- end }}

{{- define "upgrade-gate-hook.tokenVolume" -}}
{{- include "upgrade-gate-hook.forParent" (dict "context" . "name" "upgrade-gate-hook.tokenVolumeForApp") }}
{{- end }}

{{- define "upgrade-gate-hook.tokenVolumeForApp" -}}
{{- include "upgrade-gate-hook.tokenVolumeOf" (dict "root" . "name" "upgrade-gate-token") }}
{{- end }}

{{/* The labels of the hook's pods, for the `from` of the parent's NetworkPolicy. */}}
{{- define "upgrade-gate-hook.hookPodLabels" -}}
{{- include "upgrade-gate-hook.forParent" (dict "context" . "name" "upgrade-gate-hook.hookPodLabelsOf") }}
{{- end }}

{{- define "upgrade-gate-hook.hookPodLabelsOf" -}}
{{ include "upgrade-gate-hook.selectorLabels" . }}
app.kubernetes.io/component: upgrade-gate
{{- end }}

{{/* A paragraph for the parent's NOTES.txt: the helm --timeout to use, how to watch the hook. */}}
{{- define "upgrade-gate-hook.notes" -}}
{{- include "upgrade-gate-hook.forParent" (dict "context" . "name" "upgrade-gate-hook.notesOf") }}
{{- end }}

{{- define "upgrade-gate-hook.notesOf" -}}
{{- $helmTimeout := include "upgrade-gate-hook.helmTimeoutSeconds" . }}
{{- $kind := include "upgrade-gate-hook.hookKind" . -}}
UPGRADE GATE: every `helm upgrade`{{ if .Values.preRollback }} and `helm rollback`{{ end }} first runs the hook {{ $kind }} {{ include "upgrade-gate-hook.hookName" . }},
which fences the pods matching {{ include "upgrade-gate-hook.podSelector" . }}
and waits until none has work in flight (at most {{ include "upgrade-gate-hook.timeoutSeconds" . }}s; then it fails and nothing changes).
Upgrade with a --timeout of at least {{ $helmTimeout }}s:

  helm upgrade {{ .Release.Name }} <chart> --namespace {{ .Release.Namespace }} --timeout {{ $helmTimeout }}s
  kubectl --namespace {{ .Release.Namespace }} logs --follow {{ lower $kind }}/{{ include "upgrade-gate-hook.hookName" . }}
{{- end }}

{{/*
The hash of a pod template (a string: your pod template rendered without its
upgrade-gate/template-hash annotation), for that annotation. Pure: the same
text gives the same hash in templateConfigMap.
*/}}
{{- define "upgrade-gate-hook.templateHash" -}}
{{- toString . | sha256sum | trunc 16 }}
{{- end }}

{{/*
A hook ConfigMap telling the hook which pod template this upgrade rolls out
(.template, the text templateHash hashed) and how many replicas it keeps
(.replicas), for this revision; .context is the parent's context. The hook
leaves alone the pods whose upgrade-gate/template-hash annotation is that
hash; the post-rollback Job lifts fences only on them. It is created before
the hook's identity and the hook (a lower weight), and deleted when they
succeed. Renders nothing with enabled or skipUnchangedPods false. Without it
the hook gates every pod: wiring it only ever makes upgrades hold fewer pods.
*/}}
{{- define "upgrade-gate-hook.templateConfigMap" -}}
{{- $key := include "upgrade-gate-hook.locate" .context }}
{{- $own := ternary .context (index (.context.Subcharts | default dict) $key) (eq $key ".") }}
{{- if and $own.Values.enabled $own.Values.skipUnchangedPods }}
{{- if not (and (kindIs "string" .template) .template) }}
{{- fail "upgrade-gate-hook.templateConfigMap: .template must be your pod template, rendered as text without its upgrade-gate/template-hash annotation" }}
{{- end }}
{{- $replicas := toString .replicas }}
{{- if not (regexMatch "^[0-9]{1,9}$" $replicas) }}
{{- fail (printf "upgrade-gate-hook.templateConfigMap: .replicas must be your workload's replica count, got %q" $replicas) }}
{{- end }}
{{- include "upgrade-gate-hook.templateConfigMapOf" (dict "root" $own "hash" (include "upgrade-gate-hook.templateHash" .template) "replicas" $replicas) }}
{{- end }}
{{- end }}

{{- define "upgrade-gate-hook.templateConfigMapOf" -}}
{{- $root := .root -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "upgrade-gate-hook.templateName" $root }}
  labels:
    {{- include "upgrade-gate-hook.hookLabels" $root | nindent 4 }}
  annotations:
    {{- include "upgrade-gate-hook.hookAnnotations" (dict "context" $root "offset" 4 "rbac" true) | nindent 4 }}
data:
  template-hash: {{ .hash | quote }}
  replicas: {{ .replicas | quote }}
  revision: {{ $root.Release.Revision | toString | quote }}
{{- end }}
