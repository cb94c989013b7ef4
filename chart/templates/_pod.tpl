{{/*
The app's pod template, in one place because two things read it: the
Deployment, and the hook, which must know which pods the upgrade replaces.
The template's own hash (rendered with .hash empty) goes into its
upgrade-gate/template-hash annotation; a pod whose annotation equals the hash
the hook is given runs the new template already, so this upgrade does not
replace it (a config-only upgrade replaces none, and the hook fences none).
*/}}
{{- define "upgrade-gate.podTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "upgrade-gate.labels" $root | nindent 4 }}
    app.kubernetes.io/component: app
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* The gate's: restarts the pods when the drain token's settings change. */}}
    {{- include "upgrade-gate-hook.podAnnotations" $root | nindent 4 }}
    {{- with .hash }}
    upgrade-gate/template-hash: {{ . | quote }}
    {{- end }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # The app never calls the Kubernetes API; only the hook does.
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ include "upgrade-gate.terminationGracePeriodSeconds" $root }}
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: app
      image: {{ include "upgrade-gate.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        - serve
        - --host
        - 0.0.0.0
        - --port
        - "8080"
        - --threads
        - {{ int $root.Values.app.threads | quote }}
        # The probes and the hook's fence on a listener of their own, with
        # threads the app's traffic cannot take; the Service does not expose it.
        - --management-port
        - "8081"
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        - name: management
          containerPort: 8081
          protocol: TCP
      env:
        {{- /* The gate's: the drain token's file, which the hook reads too. */}}
        {{- include "upgrade-gate-hook.tokenEnv" $root | nindent 8 }}
        {{- with $root.Values.app.version }}
        - name: APP_VERSION
          value: {{ . | quote }}
        {{- end }}
        - name: OPERATION_DEFAULT_SECONDS
          value: {{ int $root.Values.app.operationDefaultSeconds | quote }}
        - name: OPERATION_MAX_SECONDS
          value: {{ int $root.Values.app.operationMaxSeconds | quote }}
        - name: SHUTDOWN_TIMEOUT_SECONDS
          value: {{ int $root.Values.app.shutdownTimeoutSeconds | quote }}
        - name: LOG_LEVEL
          value: {{ $root.Values.app.logLevel | quote }}
        {{- with $root.Values.app.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      readinessProbe:
        {{- toYaml $root.Values.readinessProbe | nindent 8 }}
      livenessProbe:
        {{- toYaml $root.Values.livenessProbe | nindent 8 }}
      {{- if gt (int $root.Values.app.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ int $root.Values.app.preStopSleepSeconds | quote }}]
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      {{- with $root.Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- include "upgrade-gate-hook.tokenVolumeMount" $root | nindent 8 }}
  volumes:
    {{- include "upgrade-gate.tmpVolume" $root | nindent 4 }}
    {{- include "upgrade-gate-hook.tokenVolume" $root | nindent 4 }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The gate's hash of the template, the one its ConfigMap gives the hook (gate-template.yaml). */}}
{{- define "upgrade-gate.templateHash" -}}
{{- include "upgrade-gate-hook.templateHash" (include "upgrade-gate.podTemplate" (dict "root" . "hash" "")) }}
{{- end }}
