"""dnnguide."""
