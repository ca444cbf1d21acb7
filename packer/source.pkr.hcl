source "amazon-ebs" "payload" {
  region                  = var.region
  ami_name                = local.ami_name
  ssh_username            = var.ssh_username
  ami_virtualization_type = "hvm"

  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [local.debian_owner]
    most_recent = true
  }

  # The build instance is a spot instance too: a bake costs cents, and an interrupted bake is
  # simply run again (nothing is published before the snapshot).
  spot_instance_types      = var.spot_instance_types
  spot_price               = "auto"
  spot_allocation_strategy = "price-capacity-optimized"

  # IMDSv2 only, on the build instance and on every instance launched from the AMI.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"

  launch_block_device_mappings {
    device_name = "/dev/xvda"
    volume_size = var.root_volume_gib
    volume_type = "gp3"
    # gp3's included baseline, stated so nothing above the free IOPS/throughput is billed.
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    delete_on_termination = true
  }
  encrypt_boot = true

  deprecate_at = timeadd(timestamp(), var.deprecate_after)

  tags          = local.image_tags
  snapshot_tags = local.image_tags
  run_tags = {
    Name    = "spotcube-bake-${substr(var.content_hash, 0, 12)}"
    Project = "spotcube"
  }
}
