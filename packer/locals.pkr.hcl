locals {
  # The one place the AMI name is built; spotcube.bake.contenthash.image_name builds the same
  # string for local images, and tests/bake checks the two agree.
  ami_name = "spotcube-payload-${var.payload_version}-${substr(var.content_hash, 0, 12)}"

  # Debian's own AWS account: only images it published can be the base.
  debian_owner = "136693071363"

  image_tags = {
    Name                        = local.ami_name
    "spotcube:content-hash"     = var.content_hash
    "spotcube:git-commit"       = var.git_commit
    "spotcube:payload-version"  = var.payload_version
    "spotcube:variant"          = var.variant
    "spotcube:numpy-version"    = var.numpy_version
    "spotcube:pyuvdata-version" = var.pyuvdata_version
    "spotcube:ducc0-version"    = var.ducc0_version
    "spotcube:source-ami"       = "{{ .SourceAMI }}"
    "spotcube:source-ami-name"  = "{{ .SourceAMIName }}"
    Project                     = "spotcube"
  }
}
