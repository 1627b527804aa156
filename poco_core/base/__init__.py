"""Foundation every layer may import: error classes, cancel tokens and event types, device choice,
allocator tuning. Imports nothing else from poco_core."""
