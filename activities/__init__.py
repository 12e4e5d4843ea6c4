"""Side effects, each idempotent on a business key; thin wrappers over store/ and gateways/."""
