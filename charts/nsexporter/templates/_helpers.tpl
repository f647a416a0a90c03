{{/* Name of the chart, overridable. */}}
{{- define "nsexporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release name, plus the chart name unless it contains it. */}}
{{- define "nsexporter.fullname" -}}
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

{{- define "nsexporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the exporter pods; never change them on upgrade. */}}
{{- define "nsexporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nsexporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "nsexporter.labels" -}}
helm.sh/chart: {{ include "nsexporter.chart" . }}
{{ include "nsexporter.selectorLabels" . }}
app.kubernetes.io/component: exporter
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "nsexporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nsexporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nsexporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Relabeling shared by ServiceMonitor and PodMonitor: name the node of each target,
and drop the exporter pod's own namespace, pod and container target labels, which
would collide with the names of the containers on nsexporter_container_info. */}}
{{- define "nsexporter.monitorRelabelings" -}}
{{- if .attachNodeLabel }}
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
  action: replace
{{- end }}
- regex: (namespace|pod|container)
  action: labeldrop
{{- with .relabelings }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The node directories of the enabled runtimes' state, one per line. */}}
{{- define "nsexporter.runtimeDirs" -}}
{{- $r := .Values.hostRoot.runtimes }}
{{- if $r.containerd }}
/run/containerd/io.containerd.runtime.v2.task
{{- end }}
{{- if $r.crio }}
/run/containers/storage/overlay-containers
{{- end }}
{{- if $r.docker }}
/var/lib/docker/containers
{{- end }}
{{- if $r.podman }}
/var/lib/containers/storage/overlay-containers
/var/lib/containers/storage/libpod
{{- end }}
{{- end }}
