"""The audit trail: records and their hash chain, stores, identity, and the trail facade."""
