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

{{/* Labels selecting the read-only dashboard's pods (never the operator's). */}}
{{- define "safedeploy.dashboardSelectorLabels" -}}
app.kubernetes.io/name: {{ include "safedeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dashboard
{{- end }}

{{/* Labels of the read-only dashboard's objects. */}}
{{- define "safedeploy.dashboardLabels" -}}
helm.sh/chart: {{ include "safedeploy.chart" . }}
{{ include "safedeploy.dashboardSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: safedeploy
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

{{/*
The operator's rules on namespaced resources: in its ClusterRole when it watches every
namespace, in a Role of the watched namespace when `watchNamespace` is set.
*/}}
{{- define "safedeploy.namespacedRules" }}
  # The rollouts it reconciles (watched; never written except their status).
  - apiGroups: [safedeploy.dev]
    resources: [safedeployments]
    verbs: [get, list, watch]
  # Its one finalizer (safedeploy.dev/routes) on the SafeDeployments that steer Gateway API
  # routes, by server-side apply of metadata.finalizers only: on deletion it returns the routes
  # to the user's rules first (docs/traffic-routing.md). It never applies a spec field.
  - apiGroups: [safedeploy.dev]
    resources: [safedeployments]
    verbs: [patch]
  # Status through server-side apply (field manager "safedeploy").
  - apiGroups: [safedeploy.dev]
    resources: [safedeployments/status]
    verbs: [patch]
  # The owner references it sets have blockOwnerDeletion; clusters with the
  # OwnerReferencesPermissionEnforcement admission plugin require this verb for that.
  - apiGroups: [safedeploy.dev]
    resources: [safedeployments/finalizers]
    verbs: [update]
  # The durable audit trail: one write-once SafeDeploymentRecord per finished history entry
  # (never changed). The retention sweep lists their metadata and deletes those older than the
  # policy's audit.recordRetention; the governance policy lets no one else delete them.
  - apiGroups: [safedeploy.dev]
    resources: [safedeploymentrecords]
    verbs: [create, list, delete]
  # The ReplicaSets of each revision (label safedeploy.dev/name): created by server-side apply,
  # scaled by patch, old revisions deleted beyond the history limit.
  - apiGroups: [apps]
    resources: [replicasets]
    verbs: [get, list, watch, create, patch, delete]
  # Deployments adopted through spec.workloadRef: read by name, watched by the label
  # safedeploy.dev/adopted-by (metadata only), and scaled by server-side apply (spec.replicas,
  # the label and the original replica count); never created or deleted.
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, watch, patch]
  # Pod health of each revision (watched; label safedeploy.dev/name). Patched only to relabel
  # the pods of a SafeDeployment that moved to another shard (safedeploy.dev/shard).
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, watch, patch]
  # ConfigMaps and Secrets: attestation envelopes and the configuration pod templates reference
  # are read by name (get); list/watch feed metadata-only caches (name and resourceVersion; the
  # operator asks for PartialObjectMetadata, so no data is ever listed), so an edit of a
  # referenced object starts a new revision and a new envelope re-checks at once; create/patch
  # make the immutable per-revision copies. Image pull Secrets are read by name for preflight.
  - apiGroups: [""]
    resources: [configmaps, secrets]
    verbs: [get, list, watch, create, patch]
  # Preflight: referenced ServiceAccounts and PersistentVolumeClaims must exist.
  - apiGroups: [""]
    resources: [serviceaccounts, persistentvolumeclaims]
    verbs: [get]
  # Events (kube's Recorder creates them and patches repeated ones into a series).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
  # Traffic routing (strategy.canary.trafficRouting): the stable and canary Services it owns
  # (read, then server-side applied whole; a Service it does not own is never taken over).
  - apiGroups: [""]
    resources: [services]
    verbs: [get, create, patch]
  # The Gateway API routes a SafeDeployment names: read and watched (a change looks at the
  # SafeDeployments naming it again), and patched by server-side apply of spec.rules only.
  - apiGroups: [gateway.networking.k8s.io]
    resources: [httproutes, grpcroutes]
    verbs: [get, list, watch, patch]
  # The Jobs of `job` analysis metrics: created once per measurement, read while they run
  # (watched, metadata only, by their label: a Job's end wakes its SafeDeployment), and the
  # finished ones beyond the newest three of a run deleted (list by the run's label).
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, watch, create, delete]
{{- end }}
