{{/*
The pod of a hook Job (the pre-upgrade gate, the post-rollback release): the
new image running `python3 -m app` with .args, as the hook's ServiceAccount.
*/}}
{{- define "upgrade-gate.hookPodTemplate" -}}
{{- $root := .root -}}
{{- $gate := $root.Values.gate -}}
template:
  metadata:
    labels:
      {{- include "upgrade-gate.hookLabels" $root | nindent 6 }}
    {{- with $gate.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    serviceAccountName: {{ include "upgrade-gate.hookName" $root }}
    # The ServiceAccount opts out; this pod is the one that needs the API.
    automountServiceAccountToken: true
    enableServiceLinks: false
    restartPolicy: Never
    {{- with $root.Values.priorityClassName }}
    priorityClassName: {{ . }}
    {{- end }}
    {{- with $root.Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml $root.Values.podSecurityContext | nindent 6 }}
    containers:
      - name: gate
        image: {{ include "upgrade-gate.gateImage" $root | quote }}
        imagePullPolicy: {{ include "upgrade-gate.gatePullPolicy" $root }}
        command: ["python3", "-m", "app"]
        args:
          {{- toYaml .args | nindent 10 }}
        env:
          - name: UPGRADE_GATE_TOKEN
            valueFrom:
              secretKeyRef:
                name: {{ include "upgrade-gate.tokenSecretName" $root }}
                key: {{ $root.Values.drainToken.key }}
                # Absent on a first sync (Argo CD runs pre-upgrade hooks as
                # PreSync then): there are no pods to fence, the hook exits 0.
                optional: true
          - name: LOG_LEVEL
            value: {{ $gate.logLevel | default $root.Values.app.logLevel | quote }}
        securityContext:
          {{- toYaml $root.Values.securityContext | nindent 10 }}
        {{- with $gate.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        volumeMounts:
          - name: tmp
            mountPath: /tmp
    volumes:
      {{- include "upgrade-gate.tmpVolume" $root | nindent 6 }}
    {{- with $gate.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $gate.affinity }}
    affinity:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $gate.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
