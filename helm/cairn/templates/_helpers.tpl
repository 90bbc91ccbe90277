{{/* Name of the release's objects: RELEASE-cairn, or RELEASE when it already says cairn. */}}
{{- define "cairn.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cairn.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (node or gateway); pass (list . "node"). */}}
{{- define "cairn.selector" -}}
app.kubernetes.io/name: {{ (index . 0).Chart.Name }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "cairn.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "cairn.secretName" -}}
{{- .Values.auth.existingSecret | default (include "cairn.fullname" .) -}}
{{- end -}}

{{/* The headless Service of the nodes, which names every node pod. */}}
{{- define "cairn.nodeService" -}}
{{- printf "%s-node" (include "cairn.fullname" .) -}}
{{- end -}}

{{/* RPC address of node pod N: pass (list . N). */}}
{{- define "cairn.nodeAddr" -}}
{{- $ := index . 0 -}}
{{- printf "%s-%d.%s.%s.svc.%s:%d" (include "cairn.nodeService" $) (index . 1) (include "cairn.nodeService" $) $.Release.Namespace $.Values.clusterDomain (int $.Values.node.port) -}}
{{- end -}}

{{/* Every node's RPC address, comma separated. */}}
{{- define "cairn.nodeAddrs" -}}
{{- $ := . -}}
{{- $addrs := list -}}
{{- range $i := until (int .Values.node.replicas) -}}
{{- $addrs = append $addrs (include "cairn.nodeAddr" (list $ $i)) -}}
{{- end -}}
{{- join "," $addrs -}}
{{- end -}}
