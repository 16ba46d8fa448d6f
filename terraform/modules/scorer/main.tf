# The scorer on Kubernetes: a StatefulSet of Bytewax processes in cluster mode. Pod <name>-<i> is
# Bytewax process i (`-i`, from the pod-index label); `-a` lists every process by its stable DNS
# name under the headless Service. Each pod keeps the rocksdict model store and Bytewax recovery
# on its own persistent volume, so a restarted pod resumes without the artifact store.

locals {
  labels = {
    "app.kubernetes.io/name"      = "edml"
    "app.kubernetes.io/component" = "scorer"
    "app.kubernetes.io/instance"  = var.name
  }

  # Bytewax `-a`: every process, in process-id order, by its StatefulSet DNS name.
  addresses = join(";", [
    for i in range(var.replicas) : "${var.name}-${i}.${var.name}.${var.namespace}.svc.cluster.local:${var.cluster_port}"
  ])

  environment = merge(
    {
      EDML_BOOTSTRAP_SERVERS = var.bootstrap_servers
      EDML_STATE_DIR         = var.state_dir
      EDML_ARTIFACT_STORE    = var.artifact_store
      EDML_METRICS_PORT      = tostring(var.metrics_port)
      # OAUTHBEARER tokens from the pod's Workload Identity (edml/kafka/google_auth.py)
      EDML_GOOGLE_KAFKA_AUTH = "1"
    },
    { for role, topic in var.topics : "EDML_TOPIC_${upper(role)}" => topic },
    { for property, value in var.kafka_properties : "EDML_KAFKA_${upper(replace(property, ".", "_"))}" => value },
    var.model_public_key == null ? {} : { EDML_MODEL_PUBLIC_KEY = var.model_public_key },
    var.extra_env,
  )

  run_as = 10001 # the image's non-root user (Dockerfile)
}

resource "kubernetes_namespace_v1" "edml" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/name" = "edml"
      # Enforce the restricted Pod Security Standard: non-root, no privilege escalation.
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }
}

resource "kubernetes_service_account_v1" "scorer" {
  metadata {
    name      = var.scorer_ksa
    namespace = kubernetes_namespace_v1.edml.metadata[0].name
    labels    = local.labels
    annotations = {
      "iam.gke.io/gcp-service-account" = var.scorer_service_account_email
    }
  }
  automount_service_account_token = false
}

resource "kubernetes_service_account_v1" "publisher" {
  metadata {
    name      = var.publisher_ksa
    namespace = kubernetes_namespace_v1.edml.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "publisher" })
    annotations = {
      "iam.gke.io/gcp-service-account" = var.publisher_service_account_email
    }
  }
  automount_service_account_token = false
}

resource "kubernetes_config_map_v1" "scorer" {
  metadata {
    name      = "${var.name}-config"
    namespace = kubernetes_namespace_v1.edml.metadata[0].name
    labels    = local.labels
  }
  data = local.environment
}

# Headless: gives each pod the stable DNS name Bytewax's `-a` uses. Not-ready pods are published
# too, because processes must find each other before any of them has a model (i.e. is ready).
resource "kubernetes_service_v1" "cluster" {
  metadata {
    name      = var.name
    namespace = kubernetes_namespace_v1.edml.metadata[0].name
    labels    = local.labels
  }
  spec {
    cluster_ip                  = "None"
    publish_not_ready_addresses = true
    selector                    = local.labels
    port {
      name        = "bytewax"
      port        = var.cluster_port
      target_port = "bytewax"
    }
  }
}

# Prometheus scrapes every scorer pod through this Service's endpoints.
resource "kubernetes_service_v1" "metrics" {
  metadata {
    name      = "${var.name}-metrics"
    namespace = kubernetes_namespace_v1.edml.metadata[0].name
    labels    = local.labels
    annotations = {
      "prometheus.io/scrape" = "true"
      "prometheus.io/port"   = tostring(var.metrics_port)
      "prometheus.io/path"   = "/metrics"
    }
  }
  spec {
    type     = "ClusterIP"
    selector = local.labels
    port {
      name        = "metrics"
      port        = var.metrics_port
      target_port = "metrics"
    }
  }
}

resource "kubernetes_stateful_set_v1" "scorer" {
  metadata {
    name      = var.name
    namespace = kubernetes_namespace_v1.edml.metadata[0].name
    labels    = local.labels
  }

  # Pods turn ready only once a model is active (/healthz); `apply` must not wait for that.
  wait_for_rollout = false

  spec {
    service_name = kubernetes_service_v1.cluster.metadata[0].name
    replicas     = var.replicas
    # All processes start together: Bytewax waits for every address in `-a`, so the default
    # OrderedReady policy would leave pod 0 waiting for pod 1, which is never started.
    pod_management_policy = "Parallel"

    selector {
      match_labels = local.labels
    }

    update_strategy {
      type = "RollingUpdate"
    }

    persistent_volume_claim_retention_policy {
      when_deleted = "Retain"
      when_scaled  = "Retain"
    }

    template {
      metadata {
        labels = local.labels
        annotations = {
          "prometheus.io/scrape" = "true"
          "prometheus.io/port"   = tostring(var.metrics_port)
          "prometheus.io/path"   = "/metrics"
        }
      }

      spec {
        service_account_name             = kubernetes_service_account_v1.scorer.metadata[0].name
        automount_service_account_token  = false
        termination_grace_period_seconds = 60

        security_context {
          run_as_non_root        = true
          run_as_user            = local.run_as
          run_as_group           = local.run_as
          fs_group               = local.run_as
          fs_group_change_policy = "OnRootMismatch"
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name  = "scorer"
          image = var.image
          # The image's entry point is `edml`; Kubernetes expands $(EDML_PROCESS_ID) from env.
          args = [
            "serve",
            "--workers", tostring(var.workers_per_process),
            "--process-id", "$(EDML_PROCESS_ID)",
            "--addresses", local.addresses,
          ]

          env {
            name = "EDML_PROCESS_ID"
            value_from {
              field_ref {
                field_path = "metadata.labels['apps.kubernetes.io/pod-index']"
              }
            }
          }

          env_from {
            config_map_ref {
              name = kubernetes_config_map_v1.scorer.metadata[0].name
            }
          }

          port {
            name           = "bytewax"
            container_port = var.cluster_port
          }

          port {
            name           = "metrics"
            container_port = var.metrics_port
          }

          # Ready = a model is active; until then the pod holds events instead of scoring them.
          readiness_probe {
            http_get {
              path = "/healthz"
              port = "metrics"
            }
            period_seconds    = 10
            failure_threshold = 3
          }

          # Alive = the process serves HTTP at all (waiting for a model is not a reason to restart).
          liveness_probe {
            tcp_socket {
              port = "metrics"
            }
            initial_delay_seconds = 60
            period_seconds        = 20
            failure_threshold     = 6
          }

          resources {
            requests = {
              cpu                 = var.resources.cpu
              memory              = var.resources.memory
              "ephemeral-storage" = "1Gi"
            }
            limits = {
              cpu                 = var.resources.cpu
              memory              = var.resources.memory
              "ephemeral-storage" = "1Gi"
            }
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "state"
            mount_path = var.state_dir
          }

          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        volume {
          name = "tmp"
          empty_dir {
            size_limit = "512Mi"
          }
        }
      }
    }

    volume_claim_template {
      metadata {
        name   = "state"
        labels = local.labels
      }
      spec {
        access_modes       = ["ReadWriteOnce"]
        storage_class_name = var.storage_class
        resources {
          requests = {
            storage = var.state_storage_size
          }
        }
      }
    }
  }
}

# Managed Service for Prometheus (enabled on the cluster) scrapes what a PodMonitoring selects.
resource "kubernetes_manifest" "pod_monitoring" {
  count = var.pod_monitoring ? 1 : 0

  manifest = {
    apiVersion = "monitoring.googleapis.com/v1"
    kind       = "PodMonitoring"
    metadata = {
      name      = var.name
      namespace = kubernetes_namespace_v1.edml.metadata[0].name
      labels    = local.labels
    }
    spec = {
      selector = {
        matchLabels = local.labels
      }
      endpoints = [{
        port     = "metrics"
        path     = "/metrics"
        interval = "30s"
      }]
    }
  }
}

# Voluntary disruptions (node upgrades) take one process at a time.
resource "kubernetes_pod_disruption_budget_v1" "scorer" {
  metadata {
    name      = var.name
    namespace = kubernetes_namespace_v1.edml.metadata[0].name
    labels    = local.labels
  }
  spec {
    max_unavailable = "1"
    selector {
      match_labels = local.labels
    }
  }
}
