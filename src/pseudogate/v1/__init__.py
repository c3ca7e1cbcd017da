"""Generated protobuf and gRPC code for package pseudogate.v1 (do not edit; see tools/gen_proto.py)."""
