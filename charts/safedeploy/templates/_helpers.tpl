{{/* The chart name, truncated to a DNS label. */}}
{{- define "safedeploy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name. */}}
{{- define "safedeploy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "safedeploy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "safedeploy.labels" -}}
helm.sh/chart: {{ include "safedeploy.chart" . }}
{{ include "safedeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: safedeploy
{{- end }}

{{/* Labels selecting the operator pods. */}}
{{- define "safedeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "safedeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The ServiceAccount name. */}}
{{- define "safedeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "safedeploy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on (explicitly, or "auto" with more than one replica). */}}
{{- define "safedeploy.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- if kindIs "bool" $enabled }}
{{- ternary "true" "" $enabled }}
{{- else if eq (toString $enabled) "true" }}true
{{- else if and (eq (toString $enabled) "auto") (gt (int .Values.replicaCount) 1) }}true
{{- end }}
{{- end }}

{{/* The Lease name. */}}
{{- define "safedeploy.leaseName" -}}
{{- default (include "safedeploy.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}
