{{/* The release's name for Vigil's objects. */}}
{{- define "vigil.fullname" -}}
{{- if contains "vigil" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-vigil" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" -}}
{{- end -}}

{{/* Labels of one component; call with (dict "root" $ "component" "detect"). */}}
{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" .root }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vigil
{{ include "vigil.selectorLabels" . }}
{{- end -}}

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vigil.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "vigil.settingsConfigMap" -}}
{{- default (printf "%s-settings" (include "vigil.fullname" .)) .Values.existingSettingsConfigMap -}}
{{- end -}}

{{/* The most replicas a stage may get: never more than the input's partitions. */}}
{{- define "vigil.maxReplicas" -}}
{{- min .Values.autoscaling.maxReplicas .Values.kafka.partitions -}}
{{- end -}}

{{/* The environment every Vigil process shares (flags by their VIGIL_* variables). */}}
{{- define "vigil.env" -}}
- name: VIGIL_BROKERS
  value: {{ .Values.kafka.brokers | quote }}
- name: VIGIL_METRICS_ADDR
  value: "0.0.0.0:9100"
- name: VIGIL_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: VIGIL_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: VIGIL_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: VIGIL_PROCESSING_GUARANTEE
  value: {{ .Values.kafka.processingGuarantee | quote }}
- name: VIGIL_GROUP_PROTOCOL
  value: {{ .Values.kafka.groupProtocol | quote }}
- name: VIGIL_KAFKA_AUTH
  value: {{ .Values.kafka.auth | quote }}
{{- if .Values.kafka.awsRegion }}
- name: VIGIL_AWS_REGION
  value: {{ .Values.kafka.awsRegion | quote }}
{{- end }}
- name: VIGIL_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: VIGIL_TOPIC_AUDIT_RAW
  value: {{ .Values.topics.auditRaw | quote }}
- name: VIGIL_TOPIC_RUNTIME_RAW
  value: {{ .Values.topics.runtimeRaw | quote }}
- name: VIGIL_TOPIC_EVENTS
  value: {{ .Values.topics.events | quote }}
- name: VIGIL_TOPIC_ENRICHED
  value: {{ .Values.topics.enriched | quote }}
- name: VIGIL_TOPIC_DETECTIONS
  value: {{ .Values.topics.detections | quote }}
- name: VIGIL_TOPIC_FINDINGS
  value: {{ .Values.topics.findings | quote }}
{{- if .Values.topics.findingsOcsf }}
- name: VIGIL_TOPIC_FINDINGS_OCSF
  value: {{ .Values.topics.findingsOcsf | quote }}
{{- end }}
- name: VIGIL_TOPIC_DEADLETTER
  value: {{ .Values.topics.deadletter | quote }}
{{- if .Values.kafka.saslSecret }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.saslSecret }}
      key: username
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.saslSecret }}
      key: password
{{- end }}
{{- end -}}

{{/* -X arguments: the user's librdkafka options, the SASL credentials, the TLS files. */}}
{{- define "vigil.kafkaArgs" -}}
{{- range $key, $value := .Values.kafka.options }}
- "-X"
- {{ printf "%s=%v" $key $value | quote }}
{{- end }}
{{- if .Values.kafka.saslSecret }}
- "-X"
- "sasl.username=$(KAFKA_SASL_USERNAME)"
- "-X"
- "sasl.password=$(KAFKA_SASL_PASSWORD)"
{{- end }}
{{- if .Values.kafka.tlsSecret }}
- "-X"
- "ssl.ca.location=/etc/vigil/kafka-tls/ca.crt"
{{- end }}
{{- end -}}

{{/* The pod's security: non-root, no service account token, the runtime's seccomp profile. */}}
{{- define "vigil.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "vigil.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/* Scheduling shared by every Deployment; call with (dict "root" $ "component" "detect"). */}}
{{- define "vigil.scheduling" -}}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .root.Values.topologySpread.maxSkew }}
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ .root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "vigil.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "vigil.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}
