{{- define "batch-worker.fullname" -}}
{{- printf "%s-batch-worker" .Release.Name | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "batch-worker.selectorLabels" -}}
app.kubernetes.io/name: batch-worker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The workers' pod template, in one place because two things read it: the
StatefulSet, and the gate's ConfigMap (gate-template.yaml), through which the
hook learns which pods an upgrade replaces. Rendered with .hash empty, it is
what the hash is taken of; with the hash, it carries it.
*/}}
{{- define "batch-worker.podTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "batch-worker.selectorLabels" $root | nindent 4 }}
  annotations:
    # The gate's: restarts the workers when the drain token's settings change.
    {{- include "upgrade-gate-hook.podAnnotations" $root | nindent 4 }}
    {{- with .hash }}
    # The gate's: a worker whose hash is the one in the gate's ConfigMap
    # already runs the template the upgrade rolls out: not replaced, not gated.
    upgrade-gate/template-hash: {{ . | quote }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ add $root.Values.drainSeconds 30 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: worker
      image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: ["python3", "-m", "upgrade_gate_sample"]
      args: ["serve", "--host", "0.0.0.0", "--port", "8080"]
      ports:
        - name: api
          containerPort: 8080
      env:
        - name: SHUTDOWN_TIMEOUT_SECONDS
          value: {{ $root.Values.drainSeconds | quote }}
        # The gate's: where the drain token is, for the app and the hook alike.
        {{- include "upgrade-gate-hook.tokenEnv" $root | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: api
        periodSeconds: 2
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- include "upgrade-gate-hook.tokenVolumeMount" $root | nindent 8 }}
  volumes:
    - name: tmp
      emptyDir: {}
    {{- include "upgrade-gate-hook.tokenVolume" $root | nindent 4 }}
{{- end }}
