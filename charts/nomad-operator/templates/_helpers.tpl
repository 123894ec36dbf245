{{/* Name of the chart, overridable. */}}
{{- define "nomad-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects. */}}
{{- define "nomad-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "nomad-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nomad-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "nomad-operator.labels" -}}
{{ include "nomad-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The ServiceAccount's name. */}}
{{- define "nomad-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nomad-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules for NomadJobs and Events: what the controller uses, nothing more. */}}
{{- define "nomad-operator.reconcileRules" -}}
- apiGroups: ["nomadoperator.dev"]
  resources: ["nomadjobs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["nomadoperator.dev"]
  resources: ["nomadjobs/status"]
  verbs: ["patch"]
- apiGroups: ["nomadoperator.dev"]
  resources: ["nomadjobs/finalizers"]
  verbs: ["update", "patch"]
# Connections: read NomadConnections where NomadJobs are.
- apiGroups: ["nomadoperator.dev"]
  resources: ["nomadconnections"]
  verbs: ["get"]
{{- if .Values.connections.readTenantSecrets }}
# connections.readTenantSecrets: the tokens and certificates NomadConnections name.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
# NomadDispatches: read them (their spec is never changed) and write their status.
- apiGroups: ["nomadoperator.dev"]
  resources: ["nomaddispatches"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["nomadoperator.dev"]
  resources: ["nomaddispatches/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.variablesFrom.enabled }}
# spec.variablesFrom: read the ConfigMaps and Secrets NomadJobs name (values are read
# one object at a time; only their metadata is watched).
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end -}}
