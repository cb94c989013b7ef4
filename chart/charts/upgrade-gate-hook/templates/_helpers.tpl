{{/*
Helpers of the upgrade-gate-hook chart. Every one takes this chart's own
context (its .Values), never the parent's: the named templates for the parent
(_parent.tpl) find that context first. The prefix upgrade-gate-hook. keeps
them apart from the upgrade-gate chart's upgrade-gate. helpers, which may be
rendered beside them.

Names. "upgrade-gate" by default, not the chart's name (an alias would change
that): the objects are named as the upgrade-gate chart names them,
<release>-upgrade-gate-<suffix>. Within 52 characters, leaving room for a
suffix and the pod suffixes Kubernetes adds; a longer one keeps a digest.
*/}}
{{- define "upgrade-gate-hook.name" -}}
{{- default "upgrade-gate" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "upgrade-gate-hook.fullname" -}}
{{- $full := "" }}
{{- if .Values.fullnameOverride }}
{{- $full = .Values.fullnameOverride }}
{{- else }}
{{- $name := include "upgrade-gate-hook.name" . }}
{{- $full = ternary $name (printf "%s-%s" .Release.Name $name) (eq .Release.Name $name) }}
{{- end }}
{{- if gt (len $full) 52 }}
{{- $full = printf "%s-%s" ($full | trunc 43 | trimSuffix "-") (sha256sum $full | trunc 8) }}
{{- end }}
{{- $full }}
{{- end }}

{{- define "upgrade-gate-hook.hookName" -}}
{{- printf "%s-hook" (include "upgrade-gate-hook.fullname" .) }}
{{- end }}

{{/* The hook's identity as regular objects of the release (rbac.yaml). */}}
{{- define "upgrade-gate-hook.identityName" -}}
{{- printf "%s-gate" (include "upgrade-gate-hook.fullname" .) }}
{{- end }}

{{/*
<fullname>-<suffix> within 58 characters (a Job's name must leave room for the
pod suffix in its job-name label); a longer one keeps a digest of the fullname.
*/}}
{{- define "upgrade-gate-hook.cutName" -}}
{{- $full := include "upgrade-gate-hook.fullname" .root }}
{{- $name := printf "%s-%s" $full .suffix }}
{{- if gt (len $name) 58 }}
{{- $name = printf "%s-%s-%s" ($full | trunc (sub 48 (len .suffix) | int) | trimSuffix "-") (sha256sum $full | trunc 8) .suffix }}
{{- end }}
{{- $name }}
{{- end }}

{{- define "upgrade-gate-hook.releaseJobName" -}}
{{- include "upgrade-gate-hook.cutName" (dict "root" . "suffix" "release") }}
{{- end }}

{{/*
The ConfigMap that tells the hook which pod template the upgrade rolls out
(templateConfigMap, for the parent). Cut to 58 as the release Job's name is.
*/}}
{{- define "upgrade-gate-hook.templateName" -}}
{{- include "upgrade-gate-hook.cutName" (dict "root" . "suffix" "template") }}
{{- end }}

{{/*
The hook's arguments that name that ConfigMap (skipUnchangedPods): the hook
reads the template hash and the replicas from it, and only from the one of
this very revision; without it, it gates every pod.
*/}}
{{- define "upgrade-gate-hook.templateArgs" -}}
{{- if .Values.skipUnchangedPods }}
{{- toJson (list "--template-from" (include "upgrade-gate-hook.templateName" .) "--template-revision" (toString .Release.Revision)) }}
{{- else }}[]
{{- end }}
{{- end }}

{{/* The chart's own name even under an alias (Helm gives an aliased chart the alias's). */}}
{{- define "upgrade-gate-hook.chart" -}}
{{- printf "upgrade-gate-hook-%s" .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Never part of a selector: the chart label changes. */}}
{{- define "upgrade-gate-hook.labels" -}}
helm.sh/chart: {{ include "upgrade-gate-hook.chart" . }}
{{ include "upgrade-gate-hook.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "upgrade-gate-hook.name" . }}
{{- end }}

{{- define "upgrade-gate-hook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "upgrade-gate-hook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The hook objects; component upgrade-gate is what the hook's selector leaves out. */}}
{{- define "upgrade-gate-hook.hookLabels" -}}
{{ include "upgrade-gate-hook.labels" . }}
app.kubernetes.io/component: upgrade-gate
{{- end }}

{{- define "upgrade-gate-hook.identityLabels" -}}
{{ include "upgrade-gate-hook.labels" . }}
app.kubernetes.io/component: upgrade-gate-identity
{{- end }}

{{/*
The hook's --selector: selector.matchLabels (each value a template), and
never the hook's own pods, which may carry the same labels (a selector of
app.kubernetes.io/instance alone would match them, and the hook would wait
for itself). Refused: no labels at all (every pod of the namespace), and a
selector that can only match the hook's own pods.
*/}}
{{- define "upgrade-gate-hook.podSelector" -}}
{{- $labels := .Values.selector.matchLabels | default dict }}
{{- if not $labels }}
{{- fail (printf "%s: selector.matchLabels is empty: set the labels of the pods to gate (your workload's selector), e.g. --set %s.selector.matchLabels.app=myapp" .Chart.Name .Chart.Name) }}
{{- end }}
{{- $pairs := list }}
{{- range $key, $value := $labels }}
{{- $text := tpl (toString $value) $ }}
{{- if not (regexMatch "^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$" $text) }}
{{- fail (printf "%s: selector.matchLabels.%s renders %q, which is not a label value" $.Chart.Name $key $text) }}
{{- end }}
{{- if and (eq $key "app.kubernetes.io/component") (eq $text "upgrade-gate") }}
{{- fail (printf "%s: selector.matchLabels selects app.kubernetes.io/component=upgrade-gate, the hook's own pods: select your workload's pods" $.Chart.Name) }}
{{- end }}
{{- $pairs = append $pairs (printf "%s=%s" $key $text) }}
{{- end }}
{{- /* A component of its own already keeps the hook's pods out. */}}
{{- if not (hasKey $labels "app.kubernetes.io/component") }}
{{- $pairs = append $pairs "app.kubernetes.io/component!=upgrade-gate" }}
{{- end }}
{{- join "," (sortAlpha $pairs) }}
{{- end }}

{{- define "upgrade-gate-hook.port" -}}
{{- toString .Values.port }}
{{- end }}

{{/* Images: repository[:tag][@digest]. */}}
{{- define "upgrade-gate-hook.image" -}}
{{- $image := .Values.image }}
{{- $ref := printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) }}
{{- if $image.digest }}
{{- $ref = printf "%s@%s" $ref $image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* The drain token. */}}
{{- define "upgrade-gate-hook.tokenSecretName" -}}
{{- .Values.drainToken.existingSecret | default (printf "%s-token" (include "upgrade-gate-hook.fullname" .)) }}
{{- end }}

{{/*
An explicit value wins; else the token already in the cluster (so upgrades keep
it and the running pods still accept it); else a new one, at install.
*/}}
{{- define "upgrade-gate-hook.drainToken" -}}
{{- if .Values.drainToken.value }}
{{- .Values.drainToken.value }}
{{- else }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "upgrade-gate-hook.tokenSecretName" .) | default dict }}
{{- $existing := dig "data" .Values.drainToken.key "" $secret }}
{{- if $existing }}
{{- $existing | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Rolls the parent's pods when the token's source changes (the app reads the
token at start). A generated token never changes, so only the settings are
hashed, not the token.
*/}}
{{- define "upgrade-gate-hook.tokenChecksum" -}}
{{- printf "%s|%s|%s" .Values.drainToken.value .Values.drainToken.existingSecret .Values.drainToken.key | sha256sum }}
{{- end }}

{{- define "upgrade-gate-hook.tokenDir" -}}/var/run/secrets/upgrade-gate{{- end }}

{{/*
Timing, derived once:  gate timeout  <  activeDeadlineSeconds  <  helm --timeout.
The hook must reach its own deadline (release the fences, log why, exit 1)
before Kubernetes kills it, and fail before helm stops waiting.
*/}}
{{- define "upgrade-gate-hook.timeoutSeconds" -}}
{{- int .Values.timeoutSeconds }}
{{- end }}

{{- define "upgrade-gate-hook.deadlineSeconds" -}}
{{- $timeout := include "upgrade-gate-hook.timeoutSeconds" . | int }}
{{- $deadline := add $timeout 60 }}
{{- if not (kindIs "invalid" .Values.activeDeadlineSeconds) }}
{{- $deadline = int .Values.activeDeadlineSeconds }}
{{- end }}
{{- if le $deadline $timeout }}
{{- fail (printf "%s: activeDeadlineSeconds (%d) must be longer than timeoutSeconds (%d): Kubernetes would kill the hook before its own deadline, leaving the pods fenced until their lease runs out and helm with no reason." .Chart.Name $deadline $timeout) }}
{{- end }}
{{- $deadline }}
{{- end }}

{{- define "upgrade-gate-hook.helmTimeoutSeconds" -}}
{{- $deadline := include "upgrade-gate-hook.deadlineSeconds" . | int }}
{{- $helm := add $deadline 60 }}
{{- if not (kindIs "invalid" .Values.helmTimeoutSeconds) }}
{{- $helm = int .Values.helmTimeoutSeconds }}
{{- end }}
{{- if le $helm $deadline }}
{{- fail (printf "%s: helmTimeoutSeconds (%d) must be longer than the hook's activeDeadlineSeconds (%d): helm would give up with \"timed out waiting for the condition\" while the hook still runs." .Chart.Name $helm $deadline) }}
{{- end }}
{{- $helm }}
{{- end }}

{{/* Combinations that cannot work: refused at render, in one line. */}}
{{- define "upgrade-gate-hook.validate" -}}
{{- $_ := include "upgrade-gate-hook.podSelector" . }}
{{- $_ = include "upgrade-gate-hook.helmTimeoutSeconds" . }}
{{- if and .Values.fence (le (mulf .Values.leaseSeconds 2.0) (float64 .Values.pollSeconds)) }}
{{- fail (printf "%s: leaseSeconds (%d) must exceed half of pollSeconds (%d): the lease would expire during a long-poll, and the hook refuses to start." .Chart.Name (int .Values.leaseSeconds) (int .Values.pollSeconds)) }}
{{- end }}
{{- if and .Values.drainToken.value .Values.drainToken.existingSecret }}
{{- fail (printf "%s: drainToken.value and drainToken.existingSecret are both set: the pods would read the Secret, and the value would go nowhere. Set one." .Chart.Name) }}
{{- end }}
{{- end }}

{{/* "true" when the post-rollback Job renders: there are fences to lift only when the hook fences. */}}
{{- define "upgrade-gate-hook.releaseOnRollback" -}}
{{- if and .Values.fence .Values.releaseOnRollback }}true{{ end }}
{{- end }}

{{/*
Hook annotations; .offset lowers the weight, so that the ServiceAccount,
Role and RoleBinding exist before the hook's pod starts.
*/}}
{{- define "upgrade-gate-hook.hookAnnotations" -}}
{{- $values := .context.Values }}
{{- $events := list "pre-upgrade" -}}
{{- if $values.preRollback }}{{ $events = append $events "pre-rollback" }}{{ end -}}
{{- if and .rbac (include "upgrade-gate-hook.releaseOnRollback" .context) }}{{ $events = append $events "post-rollback" }}{{ end -}}
helm.sh/hook: {{ .events | default (join "," $events) }}
helm.sh/hook-weight: {{ sub (int $values.hookWeight) (int .offset) | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}

{{/*
Job or Pod. auto: a bare Pod under Helm 4, which fails an upgrade whose hook
Pod is deleted; a Job under Helm 3 (which takes a force-deleted hook Pod for
one that succeeded), under a Helm it does not know, and with preRollback
(a later rollback may run the stored hook with another Helm).
*/}}
{{- define "upgrade-gate-hook.hookKind" -}}
{{- $kind := .Values.hookKind }}
{{- if eq $kind "auto" }}
{{- $helm := .Capabilities.HelmVersion.Version | default "" }}
{{- $four := and (regexMatch "^v?[0-9]+[.][0-9]+" $helm) (semverCompare "^4.0.0-0" $helm) }}
{{- $kind = ternary "Pod" "Job" (and $four (not .Values.preRollback)) }}
{{- end }}
{{- $kind }}
{{- end }}

{{/*
What the hook may do: list the pods and ReplicaSets of its namespace, and
(skipUnchangedPods) get the one ConfigMap naming the pod template; nothing more.
*/}}
{{- define "upgrade-gate-hook.hookRules" -}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
{{- if .Values.skipUnchangedPods }}
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: [{{ include "upgrade-gate-hook.templateName" . | quote }}]
  verbs: ["get"]
{{- end }}
{{- end }}

{{/*
"true" when the hook can run as the release's own identity: its
ServiceAccount, Role and RoleBinding are in the cluster, made by this
release, granting exactly hookRules to exactly that ServiceAccount. Else (a
first upgrade, other rights, objects changed by hand, helm template, which
looks nothing up, preRollback) the hook brings an identity of its own, made
as hooks. Looked up once per render.
*/}}
{{- define "upgrade-gate-hook.identityInCluster" -}}
{{- $memo := "_identityInCluster" }}
{{- if not (hasKey .Values $memo) }}
{{- $_ := set .Values $memo (include "upgrade-gate-hook.lookUpIdentity" .) }}
{{- end }}
{{- get .Values $memo }}
{{- end }}

{{- define "upgrade-gate-hook.lookUpIdentity" -}}
{{- if not .Values.preRollback }}
{{- $name := include "upgrade-gate-hook.identityName" . }}
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
{{- $rules := include "upgrade-gate-hook.hookRules" . | fromYamlArray }}
{{- $subjects := list (dict "kind" "ServiceAccount" "name" $name "namespace" $ns) }}
{{- $roleRef := dict "apiGroup" "rbac.authorization.k8s.io" "kind" "Role" "name" $name }}
{{- if and $ours (eq (toJson (dig "rules" (list) $role)) (toJson $rules)) (eq (toJson (dig "subjects" (list) $binding)) (toJson $subjects)) (eq (toJson (dig "roleRef" (dict) $binding)) (toJson $roleRef)) }}true{{ end }}
{{- end }}
{{- end }}

{{- define "upgrade-gate-hook.hookAccount" -}}
{{- if include "upgrade-gate-hook.identityInCluster" . }}
{{- include "upgrade-gate-hook.identityName" . }}
{{- else }}
{{- include "upgrade-gate-hook.hookName" . }}
{{- end }}
{{- end }}
