"""Adapters: the ports of `core` implemented on real (or simulated) technology."""
