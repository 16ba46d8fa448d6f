# The model artifact bucket: the publisher writes <prefix>/<model>/<version>.tar.gz once, the
# scorers read it. Access is IAM-only (uniform), versioning keeps an overwritten or deleted
# artifact recoverable, lifecycle rules bound what old artifacts cost.

resource "google_storage_bucket" "models" {
  project  = var.project_id
  name     = var.name
  location = var.location
  labels   = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  versioning {
    enabled = true
  }

  # Old noncurrent versions (an artifact overwritten or deleted) go after a grace period...
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # ...and no object keeps more than a few of them.
  lifecycle_rule {
    condition {
      num_newer_versions = var.noncurrent_versions_kept
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Live artifacts are never deleted by age (any version may be rolled back to or replayed), but
  # old ones move to cheaper storage.
  lifecycle_rule {
    condition {
      age        = var.archive_after_days
      with_state = "LIVE"
    }
    action {
      type          = "SetStorageClass"
      storage_class = "ARCHIVE"
    }
  }
}
