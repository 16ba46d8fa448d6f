variable "project_id" {
  description = "Google Cloud project of the cluster."
  type        = string
}

variable "region" {
  description = "Region of the (regional) Autopilot cluster."
  type        = string
}

variable "name" {
  description = "Name of the GKE cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase RFC 1035 label of at most 40 characters."
  }
}

variable "network_id" {
  description = "ID of the VPC the cluster joins."
  type        = string
}

variable "subnet_id" {
  description = "ID of the subnet for the nodes."
  type        = string
}

variable "pods_range_name" {
  description = "Name of the subnet's secondary range for pods."
  type        = string
}

variable "services_range_name" {
  description = "Name of the subnet's secondary range for services."
  type        = string
}

variable "master_cidr" {
  description = "A /28 for the private control plane endpoint; must not overlap the subnet's ranges."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.master_cidr)) && endswith(var.master_cidr, "/28")
    error_message = "master_cidr must be an IPv4 /28 block, e.g. 172.16.0.0/28."
  }
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the public control plane endpoint (where tofu and kubectl run). Empty: any address, still behind Google IAM."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : can(cidrnetmask(n.cidr_block))])
    error_message = "every master_authorized_networks[*].cidr_block must be an IPv4 CIDR block."
  }
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "node_service_account" {
  description = "Email of the service account the Autopilot nodes run as (minimal node roles, not the default compute account)."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster while true."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels put on the cluster."
  type        = map(string)
  default     = {}
}
