variable "project_id" {
  description = "Google Cloud project of the bucket."
  type        = string
}

variable "name" {
  description = "Globally unique name of the model artifact bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.name)) && !startswith(var.name, "goog")
    error_message = "name must be 3-63 lowercase letters, digits, '-' or '_' (no dots), not starting with 'goog'."
  }
}

variable "location" {
  description = "Location of the bucket: the cluster's region keeps artifact downloads local."
  type        = string
}

variable "noncurrent_retention_days" {
  description = "Days an overwritten or deleted artifact object version is kept before it is deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_retention_days >= 1 && floor(var.noncurrent_retention_days) == var.noncurrent_retention_days
    error_message = "noncurrent_retention_days must be a whole number of days, at least 1."
  }
}

variable "noncurrent_versions_kept" {
  description = "How many noncurrent versions of one object to keep at most (older ones are deleted)."
  type        = number
  default     = 3

  validation {
    condition     = var.noncurrent_versions_kept >= 1 && floor(var.noncurrent_versions_kept) == var.noncurrent_versions_kept
    error_message = "noncurrent_versions_kept must be a whole number, at least 1."
  }
}

variable "archive_after_days" {
  description = "Days after which an artifact moves to the ARCHIVE storage class (old model versions stay restorable for rollback and replay, at archive cost)."
  type        = number
  default     = 180

  validation {
    condition     = var.archive_after_days >= 30 && floor(var.archive_after_days) == var.archive_after_days
    error_message = "archive_after_days must be a whole number of days, at least 30."
  }
}

variable "force_destroy" {
  description = "Let `destroy` delete the bucket even though it holds artifacts."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels put on the bucket."
  type        = map(string)
  default     = {}
}
