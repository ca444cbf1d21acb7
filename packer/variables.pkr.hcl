# `spotcube bake --target aws` passes every variable without a default; the defaults are the
# ones a user rarely needs to change.

variable "region" {
  type        = string
  description = "AWS region the AMI is built in (and the build instance runs in)."
}

variable "spot_instance_types" {
  type        = list(string)
  description = "Instance types the spot build instance may use; several, so one pool's shortage does not stop a bake."
  default     = ["c6i.large", "c6a.large", "m6i.large", "m6a.large", "c5.large"]
}

variable "content_hash" {
  type        = string
  description = "sha256 over everything that goes into the image (spotcube.bake.contenthash); the AMI's identity."
}

variable "payload_version" {
  type        = string
  description = "Version of the payload package (payload.__version__)."
}

variable "variant" {
  type        = string
  default     = "default"
  description = "Image variant name from spotcube bake --image-config (default: the plain payload image); tagged spotcube:variant."
}

variable "git_commit" {
  type        = string
  description = "Commit of the checkout the image was baked from (with -dirty if it had local changes)."
  default     = "unknown"
}

variable "numpy_version" {
  type        = string
  description = "numpy version pinned in constraints.txt (tag)."
}

variable "pyuvdata_version" {
  type        = string
  description = "pyuvdata version pinned in constraints.txt (tag)."
}

variable "ducc0_version" {
  type        = string
  description = "ducc0 version pinned in constraints.txt (tag)."
}

variable "ansible_extra_vars_file" {
  type        = string
  description = "JSON extra-vars for ansible/site.yml written by spotcube bake (wheel path, constraints, requirements, provenance)."
}

variable "manifest_path" {
  type        = string
  description = "Where the manifest post-processor writes the build's artifacts (read back by spotcube bake)."
  default     = "manifest.json"
}

variable "ssh_username" {
  type        = string
  description = "Login user of the Debian cloud images."
  default     = "admin"
}

variable "root_volume_gib" {
  type        = number
  description = "Size of the encrypted gp3 root volume in GiB."
  default     = 16
}

variable "deprecate_after" {
  type        = string
  description = "How long after the bake the AMI is marked deprecated (a Go duration, e.g. 2160h = 90 days)."
  default     = "2160h"
}

variable "testinfra_version" {
  type        = string
  description = "pytest-testinfra version installed on the build instance to check it (from constraints.txt)."
}
