"""Pulumi components of a spotcube user stack, their pure config parsing, and Lambda handlers."""
