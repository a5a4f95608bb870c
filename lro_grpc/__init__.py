"""lro-grpc: typed clients for Google long-running operations over gRPC."""
