"""Shared test material: tiny model packs in the released formats (`tiny_pack`), used by tests,
training smoke runs and benchmarks."""
