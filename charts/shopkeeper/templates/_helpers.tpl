{{/* The release's full name, the prefix of every object: "<release>-shopkeeper", or the release name when it already says shopkeeper. */}}
{{- define "shopkeeper.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of the metrics Service, "<fullname>-metrics": a DNS label, so when fullname holds
dots (a release name may) or is too long for it, its dots are made dashes, it is cut, and a hash of
it keeps it apart from another release's ("shop.v2" and "shop-v2" in one namespace). */}}
{{- define "shopkeeper.metricsServiceName" -}}
{{- $full := include "shopkeeper.fullname" . -}}
{{- $name := printf "%s-metrics" $full -}}
{{- if or (contains "." $full) (gt (len $name) 63) -}}
{{- $name = printf "%s-%s-metrics" ($full | replace "." "-" | trunc 48 | trimSuffix "-") (sha256sum $full | trunc 6) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* The name of an object of the release outside the release namespace (a ClusterRole, a
ClusterRoleBinding, a RoleBinding in a watched namespace): "<release namespace>-<fullname>-<suffix>".
Releases of one name in two namespaces share those scopes, so the release namespace keeps their
objects apart (at most 63+1+63+1+suffix characters, well inside the 253 a name may hold).
Call with (dict "context" $ "suffix" "manager"). */}}
{{- define "shopkeeper.sharedName" -}}
{{- printf "%s-%s-%s" .context.Release.Namespace (include "shopkeeper.fullname" .context) .suffix -}}
{{- end -}}

{{/* The name of the Lease the release's managers elect their leader with, in the release
namespace: one per release, so two releases in one namespace each run their own controller. */}}
{{- define "shopkeeper.leaderElectionID" -}}
{{- printf "%s.commerce.shopkeeper.dev" (include "shopkeeper.fullname" .) -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "shopkeeper.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "shopkeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: shopkeeper
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels that select the manager's pods. */}}
{{- define "shopkeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{- define "shopkeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shopkeeper.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The manager's image: "<repository>@<digest>" when a digest is set (it names the image
alone, so the tag is left out), else "<repository>:<tag or appVersion>". */}}
{{- define "shopkeeper.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Whether the metrics endpoint is HTTPS, "true" or "false": metrics.secure, true when unset, as
`helm upgrade --reuse-values` from a chart without it (before metrics.secure) renders with that
release's values, which lack it (rendered as is, --metrics-secure= stopped the manager). */}}
{{- define "shopkeeper.metricsSecure" -}}
{{- if kindIs "bool" .Values.metrics.secure -}}
{{- .Values.metrics.secure -}}
{{- else -}}
true
{{- end -}}
{{- end -}}
