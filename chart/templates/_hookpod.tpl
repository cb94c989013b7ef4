{{/*
The pod of a hook Job (the pre-upgrade gate, the post-rollback release): the
hook image (gate.image) running `python3 -m upgrade_gate.hook` with .args, as
the hook's ServiceAccount. The command is spelled out rather than left to the
image's entrypoint, so that any image with the hook in its Python runs it.
*/}}
{{- define "upgrade-gate.hookPodTemplate" -}}
{{- $gate := .root.Values.gate -}}
template:
  metadata:
    labels:
      {{- include "upgrade-gate.hookLabels" .root | nindent 6 }}
    {{- with $gate.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    {{- include "upgrade-gate.hookPodSpec" . | nindent 4 }}
{{- end }}

{{/*
The spec of a hook's pod, in a Job's template or as the hook itself
(gate.hookKind Pod). It mounts nothing but the API token and the drain
token: the hook writes no file, and the root filesystem stays read-only.
*/}}
{{- define "upgrade-gate.hookPodSpec" -}}
{{- $root := .root -}}
{{- $gate := $root.Values.gate -}}
serviceAccountName: {{ include "upgrade-gate.hookAccount" $root }}
# The ServiceAccount opts out; this pod is the one that needs the API.
automountServiceAccountToken: true
enableServiceLinks: false
restartPolicy: Never
{{- with .activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: gate
    image: {{ include "upgrade-gate.gateImage" $root | quote }}
    imagePullPolicy: {{ include "upgrade-gate.gatePullPolicy" $root }}
    command: ["python3", "-m", "upgrade_gate.hook"]
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      {{- include "upgrade-gate.tokenEnv" $root | nindent 6 }}
      - name: LOG_LEVEL
        value: {{ $gate.logLevel | default $root.Values.app.logLevel | quote }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    {{- with $gate.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      {{- include "upgrade-gate.tokenMount" $root | nindent 6 }}
volumes:
  # Absent on a first sync (Argo CD runs pre-upgrade hooks as PreSync then):
  # there are no pods to fence, the hook exits 0.
  {{- include "upgrade-gate.tokenVolume" (dict "root" $root "optional" true) | nindent 2 }}
{{- with $gate.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $gate.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $gate.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
