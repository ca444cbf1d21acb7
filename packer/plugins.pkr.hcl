# Kept in a file of its own: Debian's packer 1.6.6 (used by the tests for `packer validate`)
# predates required_plugins, so the tests validate a staged copy without this file.
packer {
  # 1.10 is the first release where `packer init` installs plugins by these exact pins.
  required_version = ">= 1.10.0"
  required_plugins {
    # Exact pins: a plugin upgrade changes the image recipe, so it goes through review and
    # changes the content hash (this file is hashed) like any other input.
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.3.3"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = "= 1.1.2"
    }
  }
}
