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

{{- define "upgrade-gate.hookName" -}}
{{- printf "%s-hook" (include "upgrade-gate.fullname" .) }}
{{- end }}

{{/* The hook's identity as regular objects of the release (gate-rbac.yaml). */}}
{{- define "upgrade-gate.identityName" -}}
{{- printf "%s-gate" (include "upgrade-gate.fullname" .) }}
{{- end }}

{{/*
The post-rollback Job. "-release" is longer than the room fullname leaves:
a long name is cut to 58 and keeps a digest of the whole, so it stays unique.
*/}}
{{- define "upgrade-gate.releaseJobName" -}}
{{- $full := include "upgrade-gate.fullname" . }}
{{- $name := printf "%s-release" $full }}
{{- if gt (len $name) 58 }}
{{- $name = printf "%s-%s-release" ($full | trunc 41 | trimSuffix "-") (sha256sum $full | trunc 8) }}
{{- end }}
{{- $name }}
{{- end }}

{{/*
"true" when the post-rollback Job renders: there are fences to lift only when
the gate runs and fences. The hook's RBAC is a post-rollback hook then, too.
*/}}
{{- define "upgrade-gate.releaseOnRollback" -}}
{{- $gate := .Values.gate }}
{{- if and $gate.enabled $gate.fence $gate.releaseOnRollback }}true{{ end }}
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

{{- define "upgrade-gate.hookLabels" -}}
{{ include "upgrade-gate.labels" . }}
app.kubernetes.io/component: upgrade-gate
{{- end }}

{{/* The hook's regular identity: not component upgrade-gate, which names hook objects. */}}
{{- define "upgrade-gate.identityLabels" -}}
{{ include "upgrade-gate.labels" . }}
app.kubernetes.io/component: upgrade-gate-identity
{{- end }}

{{/* The same labels as a selector string for `app wait --selector`. */}}
{{- define "upgrade-gate.appSelector" -}}
{{- $pairs := list }}
{{- range $key, $value := include "upgrade-gate.appSelectorLabels" . | fromYaml }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," (sortAlpha $pairs) }}
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

{{- define "upgrade-gate.gateImage" -}}
{{- $gate := .Values.gate.image }}
{{- include "upgrade-gate.imageRef" (dict "repository" $gate.repository "tag" $gate.tag "digest" $gate.digest "default" .Chart.AppVersion) }}
{{- end }}

{{- define "upgrade-gate.gatePullPolicy" -}}
{{- .Values.gate.image.pullPolicy | default .Values.image.pullPolicy }}
{{- end }}

{{/* The drain token. */}}
{{- define "upgrade-gate.tokenSecretName" -}}
{{- .Values.drainToken.existingSecret | default (printf "%s-token" (include "upgrade-gate.fullname" .)) }}
{{- end }}

{{/*
An explicit value wins; else the token already in the cluster (so upgrades keep
it and the running pods still accept it); else a new one, at install.
*/}}
{{- define "upgrade-gate.drainToken" -}}
{{- if .Values.drainToken.value }}
{{- .Values.drainToken.value }}
{{- else }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "upgrade-gate.tokenSecretName" .) | default dict }}
{{- $existing := dig "data" .Values.drainToken.key "" $secret }}
{{- if $existing }}
{{- $existing | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Rolls the pods when the token's source changes: env vars are read at start, so
pods left on an old token would refuse the next hook's fence. A generated token
never changes (lookup keeps it), so only the settings are hashed, not the token.
*/}}
{{- define "upgrade-gate.tokenChecksum" -}}
{{- printf "%s|%s|%s" .Values.drainToken.value .Values.drainToken.existingSecret .Values.drainToken.key | sha256sum }}
{{- end }}

{{/*
Timing. The numbers that must agree are derived here, once:

  gate timeout  <  Job activeDeadlineSeconds  <  helm --timeout

The hook must reach its own deadline (release the fences, log why, exit 1)
before Kubernetes kills its Job, and the Job must fail before helm stops
waiting, or helm reports only "timed out waiting for the condition" while the
Job carries on without it. Each margin covers pod scheduling, image pull and
start-up of the step before.
*/}}
{{- define "upgrade-gate.gateTimeoutSeconds" -}}
{{- int .Values.gate.timeoutSeconds }}
{{- end }}

{{- define "upgrade-gate.jobDeadlineSeconds" -}}
{{- $timeout := include "upgrade-gate.gateTimeoutSeconds" . | int }}
{{- $deadline := add $timeout 60 }}
{{- if not (kindIs "invalid" .Values.gate.activeDeadlineSeconds) }}
{{- $deadline = int .Values.gate.activeDeadlineSeconds }}
{{- end }}
{{- if le $deadline $timeout }}
{{- fail (printf "gate.activeDeadlineSeconds (%d) must be longer than gate.timeoutSeconds (%d): Kubernetes would kill the hook before its own deadline, leaving the pods fenced until their lease runs out and helm with no reason. Raise gate.activeDeadlineSeconds or lower gate.timeoutSeconds." $deadline $timeout) }}
{{- end }}
{{- $deadline }}
{{- end }}

{{- define "upgrade-gate.helmTimeoutSeconds" -}}
{{- $deadline := include "upgrade-gate.jobDeadlineSeconds" . | int }}
{{- $helm := add $deadline 60 }}
{{- if not (kindIs "invalid" .Values.gate.helmTimeoutSeconds) }}
{{- $helm = int .Values.gate.helmTimeoutSeconds }}
{{- end }}
{{- if le $helm $deadline }}
{{- fail (printf "gate.helmTimeoutSeconds (%d) must be longer than the hook Job's activeDeadlineSeconds (%d): helm would give up with \"timed out waiting for the condition\" while the Job still runs. Use a longer helm --timeout, or lower gate.timeoutSeconds." $helm $deadline) }}
{{- end }}
{{- $helm }}
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
{{- if and .Values.gate.enabled .Values.gate.fence (le (mulf .Values.gate.leaseSeconds 2.0) (float64 .Values.gate.pollSeconds)) }}
{{- fail (printf "gate.leaseSeconds (%d) must exceed half of gate.pollSeconds (%d): the lease would expire during a long-poll, and the hook refuses to start." (int .Values.gate.leaseSeconds) (int .Values.gate.pollSeconds)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget is enabled without minAvailable or maxUnavailable: set one of them." }}
{{- end }}
{{- end }}

{{/* The app mounts it: the root filesystem is read-only, and gunicorn wants a /tmp. */}}
{{/*
The drain token reaches a pod as a file, never in its environment (which
crash dumps, /proc/PID/environ and child processes see): the app and the hook
read the file $UPGRADE_GATE_TOKEN_FILE names. .optional: the hook's pod
starts without the Secret (a first Argo CD sync runs it before the Secret
exists, with no pods to fence).
*/}}
{{- define "upgrade-gate.tokenDir" -}}/var/run/secrets/upgrade-gate{{- end }}

{{- define "upgrade-gate.tokenEnv" -}}
- name: UPGRADE_GATE_TOKEN_FILE
  value: {{ include "upgrade-gate.tokenDir" . }}/token
{{- end }}

{{- define "upgrade-gate.tokenMount" -}}
- name: drain-token
  mountPath: {{ include "upgrade-gate.tokenDir" . }}
  readOnly: true
{{- end }}

{{- define "upgrade-gate.tokenVolume" -}}
- name: drain-token
  secret:
    secretName: {{ include "upgrade-gate.tokenSecretName" .root }}
    items:
      - key: {{ .root.Values.drainToken.key }}
        path: token
    defaultMode: 0444
    {{- if .optional }}
    optional: true
    {{- end }}
{{- end }}

{{- define "upgrade-gate.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/*
Hook annotations for the gate's objects; .offset lowers the weight, so the
ServiceAccount, Role and RoleBinding exist before the Job's pod starts.
*/}}
{{- define "upgrade-gate.hookAnnotations" -}}
{{- $values := .context.Values.gate }}
{{- $events := list "pre-upgrade" -}}
{{- if $values.preRollback }}{{ $events = append $events "pre-rollback" }}{{ end -}}
{{- /* The hook's identity serves the post-rollback release Job too. */ -}}
{{- if and .rbac (include "upgrade-gate.releaseOnRollback" .context) }}{{ $events = append $events "post-rollback" }}{{ end -}}
helm.sh/hook: {{ .events | default (join "," $events) }}
helm.sh/hook-weight: {{ sub (int $values.hookWeight) (int .offset) | quote }}
{{- /* before-hook-creation: an interrupted run's leftovers never make the next one fail "already exists". */}}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}

{{/*
What runs the pre-upgrade gate: Job or Pod. gate.hookKind auto chooses by the
Helm that renders (and so runs) the upgrade. Helm 4, waiting as it does by
default, fails an upgrade whose hook Pod is deleted (it waits for the Pod to
succeed, and it never does), so the bare Pod, a second quicker, is safe there.
Helm 3 takes a hook Pod deleted with grace period 0 (a force delete, a lost
node's pods) for a hook that succeeded, and upgrades with work in flight: there
the Job, which replaces its pod, is the only safe choice. So is it for a Helm
this chart does not know (5 and later, a version that is not one), and with
gate.preRollback, whose stored hook a later `helm rollback` may run with
another Helm. (Helm 4's --wait=legacy waits like Helm 3: chart README.)
*/}}
{{- define "upgrade-gate.hookKind" -}}
{{- $kind := .Values.gate.hookKind }}
{{- if eq $kind "auto" }}
{{- $helm := .Capabilities.HelmVersion.Version | default "" }}
{{- $four := and (regexMatch "^v?[0-9]+[.][0-9]+" $helm) (semverCompare "^4.0.0-0" $helm) }}
{{- $kind = ternary "Pod" "Job" (and $four (not .Values.gate.preRollback)) }}
{{- end }}
{{- $kind }}
{{- end }}

{{/* What the hook may do: list the pods and ReplicaSets of its namespace, nothing more. */}}
{{- define "upgrade-gate.hookRules" -}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
{{- end }}

{{/*
"true" when the hook can run as the release's own identity (identityName):
its ServiceAccount, Role and RoleBinding are in the cluster, made by this
release, granting exactly hookRules to exactly that ServiceAccount. They are
then what an earlier revision applied, so they exist before this upgrade's
hook runs, and the hook needs no RBAC hooks of its own (six fewer objects for
Helm to create, delete and wait for). Otherwise (the first upgrade from a
chart without them, a chart whose hook needs other rights, objects changed by
hand, `helm template`, which looks nothing up) the hook runs as an identity of
its own made as hooks, as it always did. Never with gate.preRollback: a
pre-rollback hook runs before the rollback applies anything, under whatever
the current revision left, which may be a revision without the gate.
*/}}
{{- define "upgrade-gate.identityInCluster" -}}
{{- /* Looked up once per render (three templates ask), so that they cannot disagree. */ -}}
{{- $memo := "_identityInCluster" }}
{{- if not (hasKey .Values.gate $memo) }}
{{- $_ := set .Values.gate $memo (include "upgrade-gate.lookUpIdentity" .) }}
{{- end }}
{{- get .Values.gate $memo }}
{{- end }}

{{- define "upgrade-gate.lookUpIdentity" -}}
{{- if not .Values.gate.preRollback }}
{{- $name := include "upgrade-gate.identityName" . }}
{{- $ns := .Release.Namespace }}
{{- $account := lookup "v1" "ServiceAccount" $ns $name }}
{{- $role := lookup "rbac.authorization.k8s.io/v1" "Role" $ns $name }}
{{- $binding := lookup "rbac.authorization.k8s.io/v1" "RoleBinding" $ns $name }}
{{- $ours := true }}
{{- range (list $account $role $binding) }}
{{- $annotations := dig "metadata" "annotations" (dict) . }}
{{- if not (and (eq (get $annotations "meta.helm.sh/release-name") $.Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") $ns)) }}
{{- $ours = false }}
{{- end }}
{{- end }}
{{- $rules := include "upgrade-gate.hookRules" . | fromYamlArray }}
{{- $subjects := list (dict "kind" "ServiceAccount" "name" $name "namespace" $ns) }}
{{- $roleRef := dict "apiGroup" "rbac.authorization.k8s.io" "kind" "Role" "name" $name }}
{{- if and $ours (eq (toJson (dig "rules" (list) $role)) (toJson $rules)) (eq (toJson (dig "subjects" (list) $binding)) (toJson $subjects)) (eq (toJson (dig "roleRef" (dict) $binding)) (toJson $roleRef)) }}true{{ end }}
{{- end }}
{{- end }}

{{/* The ServiceAccount the hook pods run as (see identityInCluster). */}}
{{- define "upgrade-gate.hookAccount" -}}
{{- if include "upgrade-gate.identityInCluster" . }}
{{- include "upgrade-gate.identityName" . }}
{{- else }}
{{- include "upgrade-gate.hookName" . }}
{{- end }}
{{- end }}
