{{/* Names and labels. */}}
{{- define "newsmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "newsmon.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "newsmon.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "newsmon.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "newsmon.labels" -}}
app.kubernetes.io/name: {{ include "newsmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "newsmon.releaseLabels" . }}
{{- end -}}

{{- define "newsmon.releaseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The labels of one worker's objects: call with (dict "root" $ "worker" "extractor"). */}}
{{- define "newsmon.workerLabels" -}}
{{ include "newsmon.selectorLabels" . }}
{{ include "newsmon.releaseLabels" .root }}
{{- end -}}

{{/* Selector labels of one worker: call with (dict "root" $ "worker" "extractor"). */}}
{{- define "newsmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "newsmon.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .worker }}
{{- end -}}

{{- define "newsmon.workerName" -}}
{{- printf "%s-%s" (include "newsmon.fullname" .root) .worker | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "newsmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "newsmon.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "newsmon.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the pods find their files. */}}
{{- define "newsmon.configDir" -}}/etc/newsmon{{- end -}}
{{- define "newsmon.stateDir" -}}/var/lib/newsmon{{- end -}}
{{- define "newsmon.kafkaSecretDir" -}}/var/run/secrets/newsmon/kafka{{- end -}}
{{- define "newsmon.kafkaCaDir" -}}/var/run/secrets/newsmon/kafka-ca{{- end -}}
{{- define "newsmon.trustDir" -}}/var/run/newsmon/trust{{- end -}}

{{/* newsmon.yaml: the config tree of the values, plus the taxonomy's place when one is given. */}}
{{- define "newsmon.settingsYaml" -}}
{{- $config := deepCopy .Values.config -}}
{{- if .Values.taxonomy -}}
{{- $nlp := default dict $config.nlp -}}
{{- $_ := set $nlp "topics_file" "topics.yaml" -}}
{{- $_ := set $config "nlp" $nlp -}}
{{- end -}}
{{- if not $config.kafka.bootstrap_servers -}}
{{- fail "config.kafka.bootstrap_servers is required: the bootstrap address of your Kafka (docs/kubernetes.md)" -}}
{{- end -}}
# newsmon.yaml, rendered by the chart from .Values.config
{{ toYaml $config }}
{{- end -}}

{{/* Secrets: which Secret and key hold the SASL password, and the destinations JSON. */}}
{{- define "newsmon.kafkaSecretName" -}}
{{- default (printf "%s-kafka" (include "newsmon.fullname" .)) .Values.kafkaAuth.existingSecret -}}
{{- end -}}
{{- define "newsmon.kafkaSecretKey" -}}
{{- if .Values.kafkaAuth.existingSecret -}}{{ .Values.kafkaAuth.existingSecretKey }}{{- else -}}sasl-password{{- end -}}
{{- end -}}
{{- define "newsmon.hasKafkaPassword" -}}
{{- if or .Values.kafkaAuth.existingSecret .Values.kafkaAuth.saslPassword -}}true{{- end -}}
{{- end -}}
{{- define "newsmon.destinationsSecretName" -}}
{{- default (printf "%s-destinations" (include "newsmon.fullname" .)) .Values.destinationsSecret.existingSecret -}}
{{- end -}}
{{- define "newsmon.hasDestinations" -}}
{{- if or .Values.destinationsSecret.existingSecret .Values.destinations -}}true{{- end -}}
{{- end -}}

{{/* The consuming workers: the topic and consumer group each reads (kafka.group_prefix). */}}
{{- define "newsmon.consumedTopic" -}}
{{- $topics := .root.Values.config.kafka.topics -}}
{{- get (dict "extractor" $topics.raw "rules" $topics.enriched "notifier" $topics.alerts) .worker -}}
{{- end -}}
{{/* The rules worker's stories come in through its match step (group <prefix>-rules-match);
     its decide step (group <prefix>-rules, on the candidates topic) follows that lag. */}}
{{- define "newsmon.consumerGroup" -}}
{{- $stage := get (dict "extractor" "extractor" "rules" "rules-match" "notifier" "notifier") .worker -}}
{{- printf "%s-%s" .root.Values.config.kafka.group_prefix $stage -}}
{{- end -}}

{{/* Replicas of an autoscaled worker never exceed the partitions of its topic. */}}
{{- define "newsmon.maxReplicas" -}}
{{- min (int .spec.autoscaling.maxReplicas) (int .root.Values.config.kafka.partitions) -}}
{{- end -}}

{{- define "newsmon.autoscaled" -}}
{{- $spec := index .root.Values.workers .worker -}}
{{- if and $spec.enabled $spec.autoscaling $spec.autoscaling.enabled (or .root.Values.autoscaling.keda.enabled .root.Values.autoscaling.hpa.enabled) -}}true{{- end -}}
{{- end -}}

{{/* The Kafka environment every newsmon container gets: secrets as files, the CA. */}}
{{- define "newsmon.kafkaEnv" -}}
{{- if include "newsmon.hasKafkaPassword" . }}
- name: NEWSMON_KAFKA__SASL_PASSWORD_FILE
  value: {{ include "newsmon.kafkaSecretDir" . }}/{{ include "newsmon.kafkaSecretKey" . }}
{{- end }}
{{- if .Values.kafkaTls.caSecret }}
- name: SSL_CERT_FILE
  value: {{ include "newsmon.trustDir" . }}/ca-bundle.pem
{{- end }}
{{- end -}}

{{/* With a private Kafka CA: the public CAs (certifi's, as newsmon's HTTP clients use)
  plus that CA, in one bundle that SSL_CERT_FILE names. The Kafka client trusts the
  default paths; httpx (webhooks) trusts SSL_CERT_FILE alone, so the CA by itself would
  cut webhooks off from public endpoints. */}}
{{- define "newsmon.trustInit" -}}
{{- if .Values.kafkaTls.caSecret }}
- name: trust-bundle
  image: {{ include "newsmon.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - python
    - -c
    - "import certifi, sys; open(sys.argv[2], 'w').write(open(certifi.where()).read() + chr(10) + open(sys.argv[1]).read())"
    - {{ include "newsmon.kafkaCaDir" . }}/{{ .Values.kafkaTls.caKey }}
    - {{ include "newsmon.trustDir" . }}/ca-bundle.pem
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {cpu: 100m, memory: 64Mi}
  securityContext: {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: kafka-ca
      mountPath: {{ include "newsmon.kafkaCaDir" . }}
      readOnly: true
    - name: trust
      mountPath: {{ include "newsmon.trustDir" . }}
{{- end }}
{{- end -}}

{{- define "newsmon.kafkaVolumeMounts" -}}
{{- if include "newsmon.hasKafkaPassword" . }}
- name: kafka-secret
  mountPath: {{ include "newsmon.kafkaSecretDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.kafkaTls.caSecret }}
- name: trust
  mountPath: {{ include "newsmon.trustDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "newsmon.kafkaVolumes" -}}
{{- if include "newsmon.hasKafkaPassword" . }}
- name: kafka-secret
  secret:
    secretName: {{ include "newsmon.kafkaSecretName" . }}
    items: [{key: {{ include "newsmon.kafkaSecretKey" . }}, path: {{ include "newsmon.kafkaSecretKey" . }}}]
{{- end }}
{{- if .Values.kafkaTls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafkaTls.caSecret }}
    items: [{key: {{ .Values.kafkaTls.caKey }}, path: {{ .Values.kafkaTls.caKey }}}]
- name: trust
  emptyDir: {}
{{- end }}
{{- end -}}
