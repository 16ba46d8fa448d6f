variable "project_id" {
  description = "Google Cloud project of the service accounts."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service account IDs (<prefix>-scorer, <prefix>-publisher, <prefix>-nodes)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,15}$", var.name_prefix))
    error_message = "name_prefix must be 1-16 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "region" {
  description = "Region of the Artifact Registry repository."
  type        = string
}

variable "bucket_name" {
  description = "Model artifact bucket: scorer reads, publisher writes."
  type        = string
}

variable "repository_id" {
  description = "Artifact Registry repository: publisher/CI pushes, nodes pull."
  type        = string
}

variable "workload_pool" {
  description = "GKE Workload Identity pool, <project>.svc.id.goog (taken from the cluster so bindings wait for it)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the edml workloads."
  type        = string
}

variable "scorer_ksa" {
  description = "Kubernetes service account the scorer pods run as."
  type        = string
}

variable "publisher_ksa" {
  description = "Kubernetes service account for in-cluster publish jobs."
  type        = string
}

variable "ci_oidc" {
  description = "Optional Workload Identity Federation for the CI system (GitLab or GitHub OIDC), so CI acts as the publisher without a key. attribute_condition must pin the repository (and ideally the protected branch)."
  type = object({
    issuer_uri          = string
    allowed_audiences   = optional(list(string), [])
    attribute_mapping   = map(string)
    attribute_condition = string
  })
  default = null

  validation {
    condition     = var.ci_oidc == null || try(length(trimspace(var.ci_oidc.attribute_condition)) > 0 && startswith(var.ci_oidc.issuer_uri, "https://"), false)
    error_message = "ci_oidc needs an https issuer_uri and a non-empty attribute_condition (without one, any repository on that issuer could publish models)."
  }
}
