"""The embedded local cloud: moto over real HTTP, IMDSv2 emulators, local instances."""
