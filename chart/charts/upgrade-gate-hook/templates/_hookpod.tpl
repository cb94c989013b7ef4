{{/*
The pod of a hook Job (the pre-upgrade gate, the post-rollback release): the
hook image running `python3 -m upgrade_gate.hook` with .args.
*/}}
{{- define "upgrade-gate-hook.podTemplate" -}}
template:
  metadata:
    labels:
      {{- include "upgrade-gate-hook.hookLabels" .root | nindent 6 }}
    {{- with .root.Values.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    {{- include "upgrade-gate-hook.podSpec" . | nindent 4 }}
{{- end }}

{{/*
A hook pod's spec, in a Job's template or as the hook itself (hookKind Pod).
It mounts nothing but the API token and the drain token.
*/}}
{{- define "upgrade-gate-hook.podSpec" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
serviceAccountName: {{ include "upgrade-gate-hook.hookAccount" $root }}
# The ServiceAccount opts out; this pod is the one that needs the API.
automountServiceAccountToken: true
enableServiceLinks: false
restartPolicy: Never
{{- with .activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $values.podSecurityContext | nindent 2 }}
containers:
  - name: gate
    image: {{ include "upgrade-gate-hook.image" $root | quote }}
    imagePullPolicy: {{ $values.image.pullPolicy }}
    command: ["python3", "-m", "upgrade_gate.hook"]
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      - name: UPGRADE_GATE_TOKEN_FILE
        value: {{ include "upgrade-gate-hook.tokenDir" $root }}/token
      - name: LOG_LEVEL
        value: {{ $values.logLevel | quote }}
    securityContext:
      {{- toYaml $values.securityContext | nindent 6 }}
    {{- with $values.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: drain-token
        mountPath: {{ include "upgrade-gate-hook.tokenDir" $root }}
        readOnly: true
volumes:
  # Absent on a first sync (Argo CD runs pre-upgrade hooks as PreSync then):
  # there are no pods to fence, the hook exits 0.
  {{- include "upgrade-gate-hook.tokenVolumeOf" (dict "root" $root "optional" true) | nindent 2 }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The token Secret as a volume: .name (drain-token), .optional (for the hook's pods). */}}
{{- define "upgrade-gate-hook.tokenVolumeOf" -}}
- name: {{ .name | default "drain-token" }}
  secret:
    secretName: {{ include "upgrade-gate-hook.tokenSecretName" .root }}
    items:
      - key: {{ .root.Values.drainToken.key }}
        path: token
    defaultMode: 0444
    {{- if .optional }}
    optional: true
    {{- end }}
{{- end }}
