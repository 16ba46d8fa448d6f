variable "project_id" {
  description = "Google Cloud project that owns the network."
  type        = string
}

variable "region" {
  description = "Region of the subnet (GKE and Managed Kafka live in the same region)."
  type        = string
}

variable "name" {
  description = "Name of the VPC; the subnet, router and NAT take it as a prefix."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,50}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase RFC 1035 label of at most 52 characters."
  }
}

variable "subnet_cidr" {
  description = "Primary range of the subnet: GKE nodes and the Managed Kafka brokers' addresses."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR block, e.g. 10.10.0.0/20."
  }
}

variable "pods_cidr" {
  description = "Secondary range for GKE pods (VPC-native cluster)."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.pods_cidr))
    error_message = "pods_cidr must be an IPv4 CIDR block, e.g. 10.20.0.0/14."
  }
}

variable "services_cidr" {
  description = "Secondary range for GKE services."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.services_cidr))
    error_message = "services_cidr must be an IPv4 CIDR block, e.g. 10.30.0.0/20."
  }
}
