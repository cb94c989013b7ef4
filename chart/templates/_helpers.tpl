{{/*
Names. Every object is named after the release, so two releases in one
namespace never collide. Names stay within 58 characters (52 and a suffix such
as "-hook" or "-token"), leaving room for the pod suffixes Kubernetes adds.
*/}}
{{- define "upgrade-gate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
<release>-<name>, or <name> for a release of that very name. Unlike the usual
"release contains the chart name" rule, this never gives two releases the same
name (releases "a" and "a-upgrade-gate" would both become "a-upgrade-gate").
Too long a name is cut and keeps a digest of the whole, so it stays unique.
*/}}
{{- define "upgrade-gate.fullname" -}}
{{- $full := "" }}
{{- if .Values.fullnameOverride }}
{{- $full = .Values.fullnameOverride }}
{{- else }}
{{- $name := include "upgrade-gate.name" . }}
{{- $full = ternary $name (printf "%s-%s" .Release.Name $name) (eq .Release.Name $name) }}
{{- end }}
{{- if gt (len $full) 52 }}
{{- $full = printf "%s-%s" ($full | trunc 43 | trimSuffix "-") (sha256sum $full | trunc 8) }}
{{- end }}
{{- $full }}
{{- end }}

{{- define "upgrade-gate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. Never part of a selector: version changes. */}}
{{- define "upgrade-gate.labels" -}}
helm.sh/chart: {{ include "upgrade-gate.chart" . }}
{{ include "upgrade-gate.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "upgrade-gate.name" . }}
{{- end }}

{{- define "upgrade-gate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "upgrade-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The app pods: the Deployment's and Service's selector, and what the hook
gates. The component keeps the hook's own pod (component upgrade-gate) out.
*/}}
{{- define "upgrade-gate.appSelectorLabels" -}}
{{ include "upgrade-gate.selectorLabels" . }}
app.kubernetes.io/component: app
{{- end }}

{{/* Images: repository[:tag][@digest]; the app's and the hook's, each with the chart's appVersion for an empty tag. */}}
{{- define "upgrade-gate.imageRef" -}}
{{- $ref := printf "%s:%s" .repository (.tag | default .default) }}
{{- if .digest }}
{{- $ref = printf "%s@%s" $ref .digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{- define "upgrade-gate.image" -}}
{{- include "upgrade-gate.imageRef" (dict "repository" .Values.image.repository "tag" .Values.image.tag "digest" .Values.image.digest "default" .Chart.AppVersion) }}
{{- end }}

{{/*
SIGTERM comes after the preStop sleep; the app then waits up to
shutdownTimeoutSeconds for work in flight, and gunicorn's master allows the
worker 10 s more (app/sample/upgrade_gate_sample/server.py: graceful_timeout). Kubernetes' SIGKILL must
come after all of it.
*/}}
{{- define "upgrade-gate.terminationGracePeriodSeconds" -}}
{{- add (int .Values.app.preStopSleepSeconds) (int .Values.app.shutdownTimeoutSeconds) 10 (int .Values.app.terminationGraceMarginSeconds) }}
{{- end }}

{{/* Settings the app or the hook would refuse at start: refuse them at render. */}}
{{- define "upgrade-gate.validate" -}}
{{- if gt (int .Values.app.operationDefaultSeconds) (int .Values.app.operationMaxSeconds) }}
{{- fail (printf "app.operationDefaultSeconds (%d) must not exceed app.operationMaxSeconds (%d): the app refuses to start otherwise." (int .Values.app.operationDefaultSeconds) (int .Values.app.operationMaxSeconds)) }}
{{- end }}
{{- if .Values.gate.enabled }}
{{- /*
The gate's selector (gate.selector.matchLabels, each value a template) must
select the app's pods: one that selects none would let every upgrade through
at once, the hook finding no pod to wait for.
*/}}
{{- $pods := dig "metadata" "labels" (dict) (include "upgrade-gate.podTemplate" (dict "root" . "hash" "") | fromYaml) }}
{{- range $key, $value := .Values.gate.selector.matchLabels }}
{{- $text := tpl (toString $value) $ }}
{{- if ne $text (toString (get $pods $key)) }}
{{- fail (printf "gate.selector.matchLabels.%s renders %q, but the app's pods have %q: the hook would not gate them. Set gate.selector.matchLabels to the app's labels (with nameOverride, app.kubernetes.io/name: the same name)." $key $text (toString (get $pods $key))) }}
{{- end }}
{{- end }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget is enabled without minAvailable or maxUnavailable: set one of them." }}
{{- end }}
{{- end }}

{{/* The app mounts it: the root filesystem is read-only, and gunicorn wants a /tmp. */}}
{{- define "upgrade-gate.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
