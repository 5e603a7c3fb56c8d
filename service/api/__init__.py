"""The gRPC edge: convert (proto <-> domain), servicer, errors (status mapping), server."""
