"""Deploy-safe ops, each beside its reference twin, for parity tests."""
