variable "project_id" {
  description = "Google Cloud project of the repository."
  type        = string
}

variable "region" {
  description = "Region of the repository (the cluster's, so image pulls stay in-region)."
  type        = string
}

variable "repository_id" {
  description = "ID of the Docker repository."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.repository_id))
    error_message = "repository_id must be lowercase letters, digits and '-', starting with a letter."
  }
}

variable "keep_recent_versions" {
  description = "How many most recent image versions the cleanup policy never deletes (untagged images older than 7 days are deleted otherwise)."
  type        = number
  default     = 20

  validation {
    condition     = var.keep_recent_versions >= 1 && floor(var.keep_recent_versions) == var.keep_recent_versions
    error_message = "keep_recent_versions must be a whole number, at least 1."
  }
}

variable "labels" {
  description = "Labels put on the repository."
  type        = map(string)
  default     = {}
}
