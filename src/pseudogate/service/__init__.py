"""gRPC adapters over the domain core: server construction, interceptors, servicers."""
