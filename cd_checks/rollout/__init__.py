"""Staged, health-gated rollouts: plan, apply, gate, roll back."""
