{{/*
Names. Pod names become replica ids (STEWARD_REPLICA_ID), which must be
NATS subject tokens: no dots, so the fullname may hold none.
*/}}
{{- define "steward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "steward.fullname" -}}
{{- $name := "" -}}
{{- if .Values.fullnameOverride -}}
{{- $name = .Values.fullnameOverride -}}
{{- else -}}
{{- $base := default .Chart.Name .Values.nameOverride -}}
{{- if contains $base .Release.Name -}}
{{- $name = .Release.Name -}}
{{- else -}}
{{- $name = printf "%s-%s" .Release.Name $base -}}
{{- end -}}
{{- end -}}
{{- if contains "." $name -}}
{{- fail (printf "the chart's full name %q holds a dot: pod names are Steward replica ids, which may not (set fullnameOverride)" $name) -}}
{{- end -}}
{{- /* 40 leaves room for "-registry-headless" and a StatefulSet's pod suffix. */ -}}
{{- $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "steward.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* steward.labels: dict "root" $ "component" "config" */}}
{{- define "steward.labels" -}}
helm.sh/chart: {{ include "steward.chart" .root }}
{{ include "steward.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: steward
{{- end -}}

{{- define "steward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "steward.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The replicated services, in the order they are rendered. */}}
{{- define "steward.services" -}}config registry election scaler{{- end -}}

{{- define "steward.port" -}}
{{- get (dict "gateway" 8080 "config" 8081 "registry" 8082 "election" 8083 "scaler" 8084) . -}}
{{- end -}}

{{/*
steward.voters: the replica ids of a service's voters, comma-separated:
its StatefulSet's pod names, one per replica. dict "root" $ "component" "config"
*/}}
{{- define "steward.voters" -}}
{{- $fullname := include "steward.fullname" .root -}}
{{- $ids := list -}}
{{- range $i := until (int (index .root.Values .component).replicas) -}}
{{- $ids = append $ids (printf "%s-%s-%d" $fullname $.component $i) -}}
{{- end -}}
{{- join "," $ids -}}
{{- end -}}

{{- define "steward.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "steward.url" -}}
{{- printf "http://%s-%s:%s" (include "steward.fullname" .root) .component (include "steward.port" .component) -}}
{{- end -}}

{{/* Secrets: names, and where each value comes from. */}}
{{- define "steward.authSecret" -}}
{{- default (printf "%s-auth" (include "steward.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "steward.natsSecret" -}}
{{- default (printf "%s-nats" (include "steward.fullname" .)) .Values.nats.auth.existingSecret -}}
{{- end -}}

{{- define "steward.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else if .Values.postgresql.enabled -}}
{{- printf "%s-database" (include "steward.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "steward.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{- define "steward.natsURL" -}}
{{- if .Values.nats.enabled -}}
{{- if gt (int .Values.streamReplicas) (int .Values.nats.replicas) -}}
{{- fail (printf "streamReplicas (%d) is more than the bundled NATS servers (nats.replicas %d): JetStream could not place the streams" (int .Values.streamReplicas) (int .Values.nats.replicas)) -}}
{{- end -}}
{{- printf "nats://%s-nats:4222" (include "steward.fullname" .) -}}
{{- else -}}
{{- required "nats.external.urls is required when nats.enabled is false" .Values.nats.external.urls -}}
{{- end -}}
{{- end -}}

{{/*
steward.secretValue: the base64 value of key in the Secret name as it is in
the cluster, else of value: a generated secret is made once, at install,
and every upgrade keeps it. (helm template and dry runs see no cluster and
generate a fresh one each time.) dict "root" $ "name" "..." "key" "..." "value" "..."
*/}}
{{- define "steward.secretValue" -}}
{{- $s := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $s $s.data (hasKey $s.data .key) -}}
{{- index $s.data .key -}}
{{- else -}}
{{- .value | b64enc -}}
{{- end -}}
{{- end -}}

{{/* A token secret in Steward's shape: stw_ and 43 characters (over 250 bits). */}}
{{- define "steward.newToken" -}}
{{- printf "stw_%s" (randAlphaNum 43) -}}
{{- end -}}

{{- define "steward.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "steward.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* steward.topologySpread: dict "root" $ "component" "config" */}}
{{- define "steward.topologySpread" -}}
{{- range .root.Values.topologySpread }}
- topologyKey: {{ .topologyKey }}
  maxSkew: {{ .maxSkew }}
  whenUnsatisfiable: {{ .whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "steward.selectorLabels" $ | nindent 6 }}
{{- end }}
{{- end -}}

{{/* steward.probes: the startup, readiness and liveness probes on a port. */}}
{{- define "steward.probes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
{{- end -}}

{{/*
steward.authEnv: STEWARD_AUTH and this role's own token; the root token
when auth-init does not make per-role ones. dict "root" $ "component" "config"
*/}}
{{- define "steward.authEnv" -}}
{{- $v := .root.Values -}}
- name: STEWARD_AUTH
  value: {{ ternary "on" "off" $v.auth.enabled | quote }}
{{- if $v.auth.enabled }}
- name: STEWARD_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "steward.authSecret" .root }}
      key: {{ ternary (printf "%s-token" .component) "root-token" $v.auth.initJob.enabled }}
{{- end }}
- name: STEWARD_METRICS_PUBLIC
  value: {{ $v.auth.metricsPublic | quote }}
- name: STEWARD_LOG_FORMAT
  value: {{ $v.log.format | quote }}
- name: STEWARD_LOG_LEVEL
  value: {{ $v.log.level | quote }}
{{- end -}}

{{- define "steward.databaseEnv" -}}
{{- if include "steward.databaseSecret" . }}
- name: STEWARD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "steward.databaseSecret" . }}
      key: {{ include "steward.databaseSecretKey" . }}
{{- end }}
{{- end -}}

{{- define "steward.natsEnv" -}}
- name: STEWARD_NATS_URL
  value: {{ include "steward.natsURL" . | quote }}
{{- if or .Values.nats.enabled .Values.nats.auth.existingSecret }}
- name: STEWARD_NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ include "steward.natsSecret" . }}
      key: user
- name: STEWARD_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "steward.natsSecret" . }}
      key: password
{{- end }}
{{- end -}}
